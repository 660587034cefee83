"""Drive the HTTP server with wrk (C, event loop: it leaves the 2 cores to the server).

Every run is a warm-up followed by a fixed-duration measurement with its own wrk process.
Throughput counts only the expected statuses; anything else is reported separately.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")


@dataclass
class LoadResult:
    name: str
    seconds: float
    requests: int
    ok: int
    statuses: dict[str, int]
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mbytes: float
    token_wraps: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def unexpected(self) -> dict[str, int]:
        bad = {k: v for k, v in self.statuses.items() if not k.startswith("2")}
        bad.update({f"socket {k}": v for k, v in self.errors.items() if v and k != "status"})
        return bad


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(*, name: str, url: str, path: str, tokens: list[str], seconds: float, connections: int,
            threads: int = 2, method: str = "GET", body: str | None = None,
            expected=("200",)) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        token_file, out_file = Path(tmp) / "tokens", Path(tmp) / "out.json"
        token_file.write_text("\n".join(tokens) + "\n")
        env = {"BENCH_TOKENS": str(token_file), "BENCH_OUT": str(out_file), "BENCH_METHOD": method,
               "BENCH_PATH": path, "BENCH_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
        if body is not None:
            env["BENCH_BODY"] = body
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
                   "--timeout", "30s", "-s", str(SCRIPT), url]
        subprocess.run(command, check=True, env=env, capture_output=True, text=True,
                       timeout=seconds + 90)
        data = json.loads(out_file.read_text())
    statuses = {str(k): v for k, v in data["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if k in expected)
    lat = data["latency_us"]
    return LoadResult(
        name=name, seconds=data["duration_us"] / 1e6, requests=data["requests"], ok=ok,
        statuses=statuses, errors=data["errors"], p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000, max_ms=lat["max"] / 1000, mbytes=data["bytes"] / 1e6,
        token_wraps=data["token_wraps"])
