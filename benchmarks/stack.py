"""The system under test, started in its production shape and always torn down.

PostgreSQL and Redis are shared services of the machine (started if down); everything else —
two fresh `bench_` databases, Redis DB 9, gunicorn, a Celery worker and beat, a loopback SMTP
server — belongs to the run and is stopped / dropped by `Stack.stop()`, also after an error
or Ctrl-C.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bookings_project.testing import LoopbackSMTP, free_port, wait_for as poll

ROOT = Path(__file__).resolve().parent.parent
PG = ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtA"]
DATABASES = ("bench_bookings", "bench_documents")
REDIS_DB = 9


def sh(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def psql(sql: str, database: str = "postgres") -> str:
    return sh([*PG, "-d", database, "-c", sql]).stdout.strip()


def ensure_services() -> None:
    """Start the machine's PostgreSQL / Redis when they are down (never stopped by us)."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True).returncode:
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        sh(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        wait_for(lambda: not subprocess.run(["pg_isready", "-h", "127.0.0.1"], capture_output=True).returncode,
                 "PostgreSQL", 30)
    if subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True).returncode:
        sh(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
            "--save", "", "--appendonly", "no"])
        wait_for(lambda: not subprocess.run(["redis-cli", "ping"], capture_output=True).returncode, "Redis", 15)


def wait_for(check, what: str, timeout: float, interval: float = 0.25) -> None:
    """Wait for a service to come up (any error counts as "not yet"), or fail the run."""
    if not poll(check, timeout, interval=interval, ignore=(Exception,)):
        raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


def drop_databases() -> None:
    for name in DATABASES:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_databases() -> None:
    drop_databases()
    for name in DATABASES:
        psql(f'CREATE DATABASE "{name}"')


def redis_flush() -> None:
    sh(["redis-cli", "-h", "127.0.0.1", "-n", str(REDIS_DB), "flushdb"])


def redis_llen(key: str = "celery") -> int:
    return int(sh(["redis-cli", "-h", "127.0.0.1", "-n", str(REDIS_DB), "llen", key]).stdout.strip() or 0)


def _cpu_seconds(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Stack:
    def __init__(self, *, web_workers: str | None, var_dir: Path):
        self.var_dir = var_dir
        self.log_dir = var_dir / "logs"
        self.port = free_port()
        self.smtp = LoopbackSMTP(keep_messages=False)
        self.processes: dict[str, subprocess.Popen] = {}
        self.web_workers = web_workers
        self.databases_created = False
        self.env = {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "JWT_ACCESS_TTL": "7200",  # tokens are minted once; a full run takes ~8 minutes
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "RATE_LIMIT_ENABLED": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASES[0]}",
            "DOCUMENTS_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASES[1]}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "CACHE_KEY_PREFIX": "bench",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(self.smtp.port),
            "DEMO_DATA": "0",
            "VAR_DIR": str(var_dir),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        if web_workers:
            self.env["WEB_CONCURRENCY"] = web_workers

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        """Fresh databases and Redis DB, env for this process, Django set up and migrated."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ensure_services()
        create_databases()
        self.databases_created = True
        redis_flush()
        os.environ.update(self.env)
        import django

        django.setup()
        from ops.management.commands.runstack import Command

        Command().prepare()  # migrate both DBs + collectstatic, exactly as `make run`
        self.smtp.start()

    def start(self) -> None:
        from ops.management.commands.runstack import Command

        commands = Command().commands(with_worker=True)
        for name, command in commands.items():
            log = open(self.log_dir / f"{name}.log", "ab")
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # own process group: stop() reaches its children, nothing else
        wait_for(self._ready, "gunicorn /readyz", 60)
        wait_for(lambda: b"ready." in (self.log_dir / "worker.log").read_bytes(), "celery worker", 60)

    def _ready(self) -> bool:
        self.check_alive()
        with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:
            return response.status == 200

    def check_alive(self) -> None:
        dead = [name for name, p in self.processes.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited; see {self.log_dir}")

    def web_pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        master = self.processes["web"].pid
        children = sh(["pgrep", "-P", str(master)]).stdout.split()
        return [master, *map(int, children)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn workers and the Celery processes."""
        return sum(self.cpu_by_role(services=False).values())

    def cpu_by_role(self, *, services: bool = True) -> dict[str, float]:
        """CPU seconds used so far by each process this run started (web = the gunicorn master
        and workers, worker, beat) and, with `services`, by every PostgreSQL and Redis server
        process of the machine (the bench databases are the only busy ones during a run)."""
        roles = {}
        for name, process in self.processes.items():
            children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout
            roles[name] = _cpu_seconds([process.pid, *map(int, children.split())])
        if services:
            for name, pattern in (("postgres", "^postgres"), ("redis", "^redis-server")):
                pids = subprocess.run(["pgrep", pattern], capture_output=True, text=True).stdout.split()
                roles[name] = _cpu_seconds(map(int, pids))
        return roles

    def wait_idle(self, *, threshold: float = 0.1, window: float = 0.5, timeout: float = 120.0) -> float:
        """Wait until the server and workers use < `threshold` of a core: requests a finished
        wrk left queued must not leak into the next measurement. Returns the seconds waited."""
        started = time.monotonic()
        last = self.cpu_seconds()
        while time.monotonic() - started < timeout:
            time.sleep(window)
            now = self.cpu_seconds()
            if (now - last) / window < threshold:
                break
            last = now
        return time.monotonic() - started

    def stop_processes(self, timeout: float = 20.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time; killing its process group", file=sys.stderr)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Children left behind by a killed master (same process group, started by us).
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes = {}

    def stop(self) -> None:
        """Stop everything this run started and drop its databases; safe to call twice."""
        errors = []
        for step in (self.stop_processes, self.smtp.stop, self._close_connections, self._drop):
            try:
                step()
            except Exception as exc:  # keep tearing down the rest
                errors.append(f"{step.__name__}: {exc}")
        for error in errors:
            print(f"  teardown: {error}", file=sys.stderr)

    def _close_connections(self) -> None:
        from django.db import connections

        for alias in connections:
            connection = connections[alias]
            connection.close()
            if alias in getattr(type(connection), "_connection_pools", {}):
                connection.close_pool()

    def _drop(self) -> None:
        if self.databases_created:
            drop_databases()
            redis_flush()
            self.databases_created = False
