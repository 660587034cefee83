"""Where the time goes when a goal is missed.

`sample_server` runs py-spy (if installed) on every gunicorn worker while wrk drives one
scenario, idle threads included, and keeps only the stacks inside a request: the share spent
waiting in SQL vs. in Python, and the project lines that hold the most request time.
`profile_in_process` runs cProfile over a few requests through the same URL conf.
"""

import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent) + "/"
PROJECT_DIRS = ("accounts/", "catalog/", "reservations/", "reporting/", "ops/", "bookings_project/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    venv = Path(__import__("sys").executable).with_name("py-spy")
    return str(venv) if venv.exists() else shutil.which("py-spy")


def _frames(stack: str) -> list[tuple[str, str, int]]:
    out = []
    for part in stack.split(";"):
        found = FRAME.match(part.strip())
        if found:
            out.append((found["func"].rsplit(".", 1)[-1], found["file"], int(found["line"])))
    return out


def _short(path: str) -> str:
    """A frame's file relative to the checkout being measured (wherever it was cloned), or to
    site-packages / the standard library."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(ROOT):
        return path[len(ROOT):]
    if "lib/python3.11/" in path:
        return path.split("lib/python3.11/", 1)[1]
    return path


def summarize(raw: str, top: int = 12) -> dict:
    """Aggregate py-spy raw (collapsed) stacks of request-handling threads."""
    total, in_sql, project_inclusive, library_self = 0, 0, Counter(), Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = _frames(stack)
        if not any(f[0] == "get_response" and "django/core/handlers" in f[1] for f in frames):
            continue  # idle gunicorn threads, the master, the arbiter loop
        n = int(count)
        total += n
        if any("psycopg" in f[1] and f[0] in ("execute", "wait", "_execute_send", "fetchone", "fetchall")
               for f in frames) or any(f[0] == "wait" and "psycopg" in f[1] for f in frames):
            in_sql += n
        seen = set()
        for func, path, lineno in frames:
            rel = _short(path)
            if rel.startswith(PROJECT_DIRS) and (rel, lineno) not in seen:
                seen.add((rel, lineno))
                project_inclusive[f"{rel}:{lineno} {func}"] += n
        func, path, lineno = frames[-1]
        library_self[f"{_short(path)}:{lineno} {func}"] += n
    pct = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {"request_samples": total, "sql_wait_pct": pct(in_sql),
            "project_lines": [(name, pct(n)) for name, n in project_inclusive.most_common(top)],
            "leaf_frames": [(name, pct(n)) for name, n in library_self.most_common(top)]}


def sample_server(pids: list[int], seconds: float, drive, *, keep: Path) -> dict | None:
    """py-spy every worker for `seconds` while `drive()` (a wrk run) loads the server; the raw
    stacks are kept as `keep` (collapsed format, for flamegraph.pl or speedscope)."""
    binary = py_spy()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as tmp:
        procs, outputs = [], []
        for pid in pids:
            out = Path(tmp) / f"{pid}.txt"
            outputs.append(out)
            procs.append(subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--idle", "--nonblocking", "--full-filenames", "--format", "raw",
                 "--rate", "50", "--duration", str(int(seconds)), "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=open(keep.with_suffix(f".{pid}.log"), "w")))
        driver = threading.Thread(target=drive)
        driver.start()
        for proc in procs:
            proc.wait(timeout=seconds + 60)
        driver.join()
        raw = "\n".join(out.read_text() for out in outputs if out.exists())
    keep.write_text(raw)
    return summarize(raw)


def profile_in_process(call, repeat: int = 3, top: int = 18) -> str:
    call()  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        call()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    lines = text.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    header = next((line.strip() for line in lines if "function calls" in line), "")
    return "\n".join([header, *lines[start:]]).rstrip()


def cpu_count() -> int:
    return os.cpu_count() or 1
