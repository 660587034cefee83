"""`make run`: prepare both databases, then run web + Celery worker + beat until interrupted.

Ctrl-C or SIGTERM stops every process this command started. A worker or beat that exits is
restarted (with a growing delay); if the web server exits, or a worker or beat keeps exiting,
the others are stopped too and the command exits non-zero, so a supervisor sees the failure.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from bookings_project.commands import database_errors_as_command_error
from bookings_project.env import env_bool, env_int, env_str
from bookings_project.text import error_line


def check_database(alias: str) -> None:
    """A PostgreSQL database that cannot be reached is one clear line naming the cause (the
    connection pool would only report, after its timeout, that it got no connection)."""
    config = settings.DATABASES[alias]
    if connections[alias].vendor != "postgresql":
        return
    import psycopg

    try:
        psycopg.connect(dbname=config["NAME"], user=config.get("USER") or None,
                        password=config.get("PASSWORD") or None, host=config.get("HOST") or None,
                        port=config.get("PORT") or None, connect_timeout=5).close()
    except psycopg.Error as exc:
        hint = f" (create it: createdb {config['NAME']})" if "does not exist" in str(exc) else ""
        raise CommandError(f"Database {alias!r} ({config['NAME']}) unavailable: {error_line(exc)}{hint}") from exc


def _die_with_parent(parent: int):
    """A `preexec_fn`: the child gets SIGTERM when `parent` dies (Linux; elsewhere nothing)."""

    def arrange() -> None:
        if not sys.platform.startswith("linux"):
            return
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


# Worker and beat are restarted when they exit (at most RESTART_LIMIT times in RESTART_WINDOW
# seconds); the web server exiting stops everything.
RESTARTABLE = ("worker", "beat")
RESTART_LIMIT = 5
RESTART_WINDOW = 300.0


@dataclass
class Restarts:
    times: dict[str, list[float]] = field(default_factory=dict)  # when each process was restarted
    due: dict[str, float] = field(default_factory=dict)  # exited ones: when to start them again


@dataclass(frozen=True)
class _Environment:
    host: str
    port: int
    web_concurrency: int
    celery_concurrency: int
    demo_data: bool


class Command(BaseCommand):
    help = "Migrate, create the admin, load demo data, and serve web + worker + beat."

    def add_arguments(self, parser):
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker/beat.")
        parser.add_argument("--prepare-only", action="store_true", help="Migrate and seed, then exit.")

    def handle(self, *args, **options):
        self.env  # noqa: B018 - read now: a mistake in PORT & co. stops us before anything is migrated or started
        if not options["prepare_only"]:
            self.check_address()
        self.prepare()
        if options["prepare_only"]:
            return
        processes = self.spawn(with_worker=not options["no_worker"])
        sys.exit(self.supervise(processes))

    # --- preparation -------------------------------------------------------------------

    @cached_property
    def env(self) -> "_Environment":
        """The variables only this command reads, checked like the settings' (one line,
        `Configuration error: <VARIABLE> …`, exit 1): unchecked, `PORT=-1` started worker and beat
        and then stopped them when the web server refused the port, a bad `CELERY_CONCURRENCY`
        made the worker crash-loop, and `DEMO_DATA=false` loaded demo data (only `0` was off).
        Read on first use by any entry point (handle, or prepare/commands as `make bench` calls them)."""
        return _Environment(
            host=env_str("HOST", "") or "127.0.0.1",  # (empty, as compose passes an unset one: the default)
            port=env_int("PORT", 8000, 1, 65535),
            # Embedded mode keeps one web process (rate-limit counters are in-process then).
            web_concurrency=env_int("WEB_CONCURRENCY", 4 if settings.REDIS_URL else 1, 1),
            celery_concurrency=env_int("CELERY_CONCURRENCY", 2, 1),
            demo_data=env_bool("DEMO_DATA", True),
        )

    def check_address(self) -> None:
        """The web server's address can be listened on, before anything is migrated or started: a
        port already taken (another `make run`) or a HOST that is no address of this machine
        started worker and beat, which delivered for a moment, until the web server failed."""
        host, port = self.env.host, self.env.port
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            socket.create_server((host, port), family=family).close()
        except OSError as exc:
            raise CommandError(f"Cannot serve on {host}:{port} (HOST, PORT): {exc.strerror or exc}") from exc

    def prepare(self):
        for alias in ("default", "documents"):
            check_database(alias)
        with database_errors_as_command_error():
            self._prepare()

    def _prepare(self):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("migrate", database="documents", interactive=False, verbosity=0)
        self.stdout.write("Databases migrated (default, documents).")
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if bool(username) != bool(password):
            self.stderr.write("No admin created: set both DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD.")
        if username and password:
            from accounts.services import superuser_ensure
            from bookings_project.errors import ValidationFailed

            email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or f"{username}@localhost"  # compose passes ""
            try:
                _, created = superuser_ensure(username=username, email=email, password=password)
            except ValidationFailed as exc:  # set on purpose: starting without that admin would hide it
                problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.fields.items())
                raise CommandError(f"Admin {username!r} not created: {problems}") from exc
            self.stdout.write(f"Admin {username!r} {'created' if created else 'already exists'}.")
        if self.env.demo_data and "seed_demo" in get_commands():
            try:
                call_command("seed_demo", if_empty=True)
            except CommandError as exc:  # demo data is a convenience: never a reason not to start
                self.stderr.write(f"Demo data not loaded: {exc}")
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)

    # --- processes ---------------------------------------------------------------------

    def commands(self, *, with_worker: bool) -> dict[str, list[str]]:
        python = sys.executable
        if settings.DEBUG:
            web = [python, "manage.py", "runserver", f"{self.env.host}:{self.env.port}", "--noreload"]
        else:
            web = [python, "-m", "gunicorn", "-c", "python:bookings_project.gunicorn", "bookings_project.wsgi",
                   "--workers", str(self.env.web_concurrency)]
        commands = {"web": web}
        if with_worker:
            celery = [python, "-m", "celery", "-A", "bookings_project"]
            commands["worker"] = [*celery, "worker", "--loglevel", "INFO",
                                  "--concurrency", str(self.env.celery_concurrency)]
            commands["beat"] = [*celery, "beat", "--loglevel", "INFO",
                                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        return commands

    def spawn(self, *, with_worker: bool) -> dict[str, subprocess.Popen]:
        self.launch = self.commands(with_worker=with_worker)
        return {name: self.start(name) for name in self.launch}

    def start(self, name: str) -> subprocess.Popen:
        # Each process in a process group of its own: a signal to make's group (Ctrl-C, `kill --
        # -PGID`, `timeout`, a closed terminal's SIGHUP) reaches this command alone, which stops
        # them in order. Sent to every process, SIGTERM also hit the Celery worker's pool processes,
        # and the worker then hung in its warm shutdown until killed 15 s later. Each dies with this
        # command even if it is killed (SIGKILL) and cannot stop them.
        process = subprocess.Popen(self.launch[name], cwd=settings.BASE_DIR, process_group=0,
                                   preexec_fn=_die_with_parent(os.getpid()))
        self.stdout.write(f"started {name} (pid {process.pid}): {' '.join(self.launch[name][1:])}")
        return process

    def supervise(self, processes: dict[str, subprocess.Popen]) -> int:
        stopping = {"signal": None}

        def on_signal(signum, frame):
            stopping["signal"] = signum

        # SIGHUP too: a dropped SSH session's hangup killed this command alone, leaving the rest.
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            restarts = Restarts()
            exit_code = 0
            while stopping["signal"] is None:  # Ctrl-C is seen within half a second, even mid-backoff
                if not self.keep_up(processes, restarts):
                    exit_code = 1
                    break
                time.sleep(0.5)
            self.stop(processes)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return exit_code

    def keep_up(self, processes: dict[str, subprocess.Popen], restarts: Restarts,
                now: float | None = None) -> bool:
        """Restart a worker or beat that exited (a broker restart can make Celery's worker quit),
        1, 2, 4 … s after it exited, without blocking the caller; False — stop everything — when
        the web server exits, or one of them exits RESTART_LIMIT times within RESTART_WINDOW
        seconds (a crash loop a supervisor should see)."""
        now = time.monotonic() if now is None else now
        for name, process in list(processes.items()):
            if process.poll() is None:
                continue
            recent = [t for t in restarts.times.get(name, []) if now - t < RESTART_WINDOW]
            if name not in RESTARTABLE or len(recent) >= RESTART_LIMIT:
                self.stderr.write(f"{name} exited (code {process.returncode}); stopping the others.")
                return False
            if name not in restarts.due:
                delay = min(2 ** len(recent), 30)
                self.stderr.write(f"{name} exited (code {process.returncode}); restarting it in {delay} s.")
                restarts.due[name] = now + delay
            if now >= restarts.due[name]:
                del restarts.due[name]
                processes[name] = self.start(name)
                restarts.times[name] = [*recent, now]
        return True

    def stop(self, processes: dict[str, subprocess.Popen], timeout: float = 15.0) -> None:
        for p in processes.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, p in processes.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it.")
                p.kill()
                p.wait()
        self.stdout.write("All processes stopped.")
