"""`make run`: prepare both databases, then run web + Celery worker + beat until interrupted.

Ctrl-C or SIGTERM stops every process this command started; if any of them dies, the others
are stopped too and the command exits non-zero, so a supervisor sees the failure.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from bookings_project.commands import database_errors_as_command_error, one_line


def check_database(alias: str) -> None:
    """A PostgreSQL database that cannot be reached is one clear line naming the cause (the
    connection pool would only report, after its timeout, that it got no connection)."""
    config = settings.DATABASES[alias]
    if config["ENGINE"] != "django.db.backends.postgresql":
        return
    import psycopg

    try:
        psycopg.connect(dbname=config["NAME"], user=config.get("USER") or None,
                        password=config.get("PASSWORD") or None, host=config.get("HOST") or None,
                        port=config.get("PORT") or None, connect_timeout=5).close()
    except psycopg.Error as exc:
        hint = f" (create it: createdb {config['NAME']})" if "does not exist" in str(exc) else ""
        raise CommandError(f"Database {alias!r} ({config['NAME']}) unavailable: {one_line(exc)}{hint}") from exc


class Command(BaseCommand):
    help = "Migrate, create the admin, load demo data, and serve web + worker + beat."

    def add_arguments(self, parser):
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker/beat.")
        parser.add_argument("--prepare-only", action="store_true", help="Migrate and seed, then exit.")

    def handle(self, *args, **options):
        self.prepare()
        if options["prepare_only"]:
            return
        processes = self.spawn(with_worker=not options["no_worker"])
        sys.exit(self.supervise(processes))

    # --- preparation -------------------------------------------------------------------

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

            email = os.environ.get("DJANGO_SUPERUSER_EMAIL") or f"{username}@localhost"  # compose passes ""
            _, created = superuser_ensure(username=username, email=email, password=password)
            self.stdout.write(f"Admin {username!r} {'created' if created else 'already exists'}.")
        if os.environ.get("DEMO_DATA", "1") != "0" and "seed_demo" in get_commands():
            try:
                call_command("seed_demo", if_empty=True)
            except CommandError as exc:  # demo data is a convenience: never a reason not to start
                self.stderr.write(f"Demo data not loaded: {exc}")
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)

    # --- processes ---------------------------------------------------------------------

    def commands(self, *, with_worker: bool) -> dict[str, list[str]]:
        python = sys.executable
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        if settings.DEBUG:
            web = [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"]
        else:
            # Embedded mode keeps one process (rate-limit counters are in-process then).
            workers = os.environ.get("WEB_CONCURRENCY", "4" if settings.REDIS_URL else "1")
            web = [python, "-m", "gunicorn", "bookings_project.wsgi", "--bind", f"{host}:{port}",
                   "--workers", workers, "--threads", os.environ.get("WEB_THREADS", "8"),
                   "--access-logfile", "-", "--graceful-timeout", "10"]
        commands = {"web": web}
        if with_worker:
            celery = [python, "-m", "celery", "-A", "bookings_project"]
            commands["worker"] = [*celery, "worker", "--loglevel", "INFO",
                                  "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2")]
            commands["beat"] = [*celery, "beat", "--loglevel", "INFO",
                                "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        return commands

    def spawn(self, *, with_worker: bool) -> dict[str, subprocess.Popen]:
        processes = {}
        for name, command in self.commands(with_worker=with_worker).items():
            processes[name] = subprocess.Popen(command, cwd=settings.BASE_DIR)
            self.stdout.write(f"started {name} (pid {processes[name].pid}): {' '.join(command[1:])}")
        return processes

    def supervise(self, processes: dict[str, subprocess.Popen]) -> int:
        stopping = {"signal": None}

        def on_signal(signum, frame):
            stopping["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        exit_code = 0
        while stopping["signal"] is None:
            dead = [name for name, p in processes.items() if p.poll() is not None]
            if dead:
                self.stderr.write(f"{', '.join(dead)} exited; stopping the others.")
                exit_code = 1
                break
            time.sleep(0.5)
        self.stop(processes)
        return exit_code

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
