"""`make run` end to end: the real command, embedded defaults (SQLite, filesystem broker, no
Redis), production web server; a registration's welcome email reaches SMTP within seconds,
and SIGTERM stops every process it started."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from bookings_project.testing import free_port, wait_for

pytestmark = pytest.mark.slow


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")



def test_make_run_serves_and_delivers_welcome_email_without_redis(tmp_path, smtp_server):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "DOCUMENTS_DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), PORT=str(port), HOST="127.0.0.1", DEMO_DATA="0", DEBUG="0",
               SECRET_KEY="test-secret-key-for-the-runstack-test-0123456789",
               JWT_SIGNING_KEY="test-jwt-signing-key-for-the-runstack-test-0123456789",
               EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_server.port), OUTBOX_SWEEP_SECONDS="2",
               DJANGO_SUPERUSER_USERNAME="root", DJANGO_SUPERUSER_EMAIL="root@example.com",
               DJANGO_SUPERUSER_PASSWORD="Root-pass-123!")
    stack = subprocess.Popen([sys.executable, "manage.py", "runstack"], cwd=settings.BASE_DIR, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: http("GET", f"{base}/healthz") == (200, {"status": "ok"}), timeout=60, interval=0.2, ignore=(OSError,))
        assert wait_for(lambda: http("GET", f"{base}/readyz")[0] == 200, timeout=20, interval=0.2, ignore=(OSError,))
        status, body = http("POST", f"{base}/api/v1/user",
                            {"username": "newbie", "email": "newbie@example.com", "password": "S3cure-pass!"},
                            headers={"X-Request-ID": "signup-0042"})
        assert status == 201, body
        registered = time.monotonic()
        assert wait_for(lambda: any(m["to"] == ["newbie@example.com"] for m in smtp_server.messages), timeout=20, interval=0.2)
        assert time.monotonic() - registered < 20
        status, tokens = http("POST", f"{base}/api/v1/auth/login", {"username": "root", "password": "Root-pass-123!"})
        assert status == 200 and tokens["token"]
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            output = stack.communicate(timeout=40)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            output = stack.communicate()[0].decode(errors="replace")
            pytest.fail(f"runstack did not stop on SIGTERM:\n{output[-3000:]}")
    assert "All processes stopped." in output, output[-3000:]
    # The access log names each request's id (the one its application log lines carry) and time.
    assert re.search(r'"POST /api/v1/user HTTP/1.1" 201 \d+ \d+ms \[signup-0042\]', output), output[-3000:]
    # Nothing it started is left listening.
    assert not wait_for(lambda: http("GET", f"{base}/healthz")[0] == 200, timeout=1, interval=0.2, ignore=(OSError,))


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_one_line_naming_the_cause(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    config = settings.DATABASES["default"]
    url = f"postgres://{config['USER']}@{config['HOST']}:{config['PORT'] or 5432}/no_such_db_for_runstack"
    result = subprocess.run([sys.executable, "manage.py", "runstack", "--prepare-only"], cwd=settings.BASE_DIR,
                            env={**os.environ, "DATABASE_URL": url, "VAR_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert 'database "no_such_db_for_runstack" does not exist' in line and "createdb no_such_db_for_runstack" in line


def test_a_configuration_error_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, capture_output=True,
                            text=True, timeout=60, env={**env, "DEBUG": "0", "VAR_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip() == ("Configuration error: DEBUG is off but SECRET_KEY is unset (or the development "
                                     "key): set SECRET_KEY to a secret value.")


@pytest.mark.django_db(databases=["default", "documents"])
def test_an_empty_superuser_email_falls_back_instead_of_making_an_admin_without_one(monkeypatch):
    """docker-compose passes DJANGO_SUPERUSER_EMAIL through even when it is unset (as "")."""
    from django.core.management import call_command

    from accounts.models import User

    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "S3cure-admin-pass!")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "")
    monkeypatch.setenv("DEMO_DATA", "0")
    call_command("runstack", "--prepare-only")
    assert User.objects.get(username="root").email == "root@localhost"


@pytest.mark.django_db(databases=["default", "documents"])
def test_an_invalid_admin_from_the_environment_stops_the_start_and_says_what_is_wrong(monkeypatch):
    """The operator asked for this admin: starting without it (or with a password every other
    account would be refused) would hide the mistake."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from accounts.models import User

    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "bad name!")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "short")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "notanemail")
    monkeypatch.setenv("DEMO_DATA", "0")
    with pytest.raises(CommandError) as refused:
        call_command("runstack", "--prepare-only")
    message = str(refused.value)
    assert message.startswith("Admin 'bad name!' not created: ")
    assert all(f"{field}: " in message for field in ("username", "email", "password")), message
    assert not User.objects.exists()


def test_a_worker_that_exits_is_restarted_until_it_crash_loops_and_the_web_is_never():
    from ops.management.commands import runstack

    command = runstack.Command()
    command.launch = {"web": [sys.executable, "-c", "import time; time.sleep(30)"],
                      "worker": [sys.executable, "-c", "raise SystemExit(3)"]}
    processes = {name: command.start(name) for name in command.launch}
    try:
        processes["worker"].wait(10)
        restarts, now = runstack.Restarts(), 100.0
        for attempt in range(runstack.RESTART_LIMIT):  # restarted each time it exits, 1, 2, 4 … s later
            exited = processes["worker"]
            assert command.keep_up(processes, restarts, now=now)  # returns at once: the restart waits
            assert processes["worker"] is exited and restarts.due["worker"] == now + 2 ** attempt
            now += 2 ** attempt
            assert command.keep_up(processes, restarts, now=now)
            assert processes["worker"] is not exited and "worker" not in restarts.due
            processes["worker"].wait(10)
        assert len(restarts.times["worker"]) == runstack.RESTART_LIMIT
        assert not command.keep_up(processes, restarts, now=now)  # a crash loop: stop everything
        assert command.keep_up(processes, restarts, now=100.0 + runstack.RESTART_WINDOW + 10)  # an old loop is forgiven
        processes["web"].kill()
        processes["web"].wait(10)
        assert not command.keep_up(processes, runstack.Restarts(), now=1_000.0)  # the web server is never restarted
    finally:
        for process in processes.values():
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("name, value, message", [
    ("PORT", "-1", "PORT must be from 1 to 65535, got -1"),
    ("PORT", "abc", "PORT must be an integer, got 'abc'"),
    ("CELERY_CONCURRENCY", "0", "CELERY_CONCURRENCY must be at least 1, got 0"),
    ("WEB_CONCURRENCY", "many", "WEB_CONCURRENCY must be an integer, got 'many'"),
    ("DEMO_DATA", "banana", "DEMO_DATA must be 1 or 0"),
])
def test_runstacks_own_variables_are_checked_before_anything_is_migrated_or_started(tmp_path, name, value, message):
    """PORT=-1 used to migrate, start worker and beat, and stop them once the web server refused
    the port; CELERY_CONCURRENCY=abc crash-looped the worker while the web server served on."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "DOCUMENTS_DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    result = subprocess.run([sys.executable, "manage.py", "runstack", "--prepare-only"], cwd=settings.BASE_DIR,
                            env={**env, "VAR_DIR": str(tmp_path), name: value},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Configuration error: {message}") and "Traceback" not in result.stderr
    assert not (tmp_path / "bookings.sqlite3").exists()  # nothing migrated


@pytest.mark.django_db(databases=["default", "documents"])
@pytest.mark.parametrize("value", ["0", "false", "off", "no"])
def test_demo_data_is_off_however_the_switch_is_spelled(monkeypatch, value):
    """Only `0` used to mean off: `DEMO_DATA=false` loaded the demo accounts."""
    from django.core.management import call_command

    from catalog.models import BookableItem

    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    monkeypatch.setenv("DEMO_DATA", value)
    call_command("runstack", "--prepare-only")
    assert not BookableItem.objects.exists()


def test_the_processes_get_the_checked_values(monkeypatch, settings):
    from ops.management.commands import runstack

    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("CELERY_CONCURRENCY", "5")
    command = runstack.Command()
    settings.DEBUG = False
    launch = command.commands(with_worker=True)
    assert launch["web"][-2:] == ["--workers", "3"] and launch["worker"][-2:] == ["--concurrency", "5"]
    settings.DEBUG = True
    assert "127.0.0.1:8123" in command.commands(with_worker=False)["web"]


@pytest.mark.django_db(databases=["default", "documents"])
def test_prepare_and_commands_work_on_a_fresh_command_as_make_bench_calls_them(monkeypatch):
    """benchmarks/stack.py calls Command().prepare() and Command().commands() without handle():
    each reads (and checks) the environment on first use."""
    from ops.management.commands import runstack

    monkeypatch.setenv("DEMO_DATA", "0")
    runstack.Command().prepare()
    assert "--concurrency" in runstack.Command().commands(with_worker=True)["worker"]
    monkeypatch.setenv("PORT", "-1")
    with pytest.raises(ImproperlyConfigured, match="PORT"):
        runstack.Command().commands(with_worker=False)


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_each_process_runs_in_its_own_process_group_so_a_signal_to_makes_group_reaches_runstack_alone():
    """`kill -TERM -- -PGID` (or `timeout make run`) sent SIGTERM to every process at once; the
    Celery worker's pool processes died of it and the worker then hung in its warm shutdown until
    runstack killed it 15 s later."""
    from ops.management.commands import runstack

    command = runstack.Command()
    command.launch = {"web": SLEEPER}
    process = command.start("web")
    try:
        assert os.getpgid(process.pid) == process.pid != os.getpgid(0)
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_processes_die_with_runstack_even_when_it_is_killed(tmp_path):
    """A runstack killed with SIGKILL (the OOM killer, `kill -9`) cannot stop what it started:
    each process is asked to stop by the kernel instead of serving on, orphaned."""
    script = ("import os, sys, time, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bookings_project.settings');"
              "django.setup(); from ops.management.commands import runstack; c = runstack.Command();"
              f"c.launch = {{'web': {SLEEPER!r}}}; print('pid', c.start('web').pid, flush=True); time.sleep(60)")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DOCUMENTS_DATABASE_URL"}}
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=settings.BASE_DIR, stdout=subprocess.PIPE,
                              text=True, env={**env, "VAR_DIR": str(tmp_path)})
    child = int(next(line for line in parent.stdout if line.startswith("pid ")).split()[1])
    try:
        parent.kill()
        parent.wait(10)

        def gone():
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{child}/stat") as stat:  # a zombie waiting for init to reap it is gone too
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"

        assert wait_for(gone, timeout=10, interval=0.1, ignore=(FileNotFoundError,))
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sighup_stops_every_process_as_sigterm_does():
    """A dropped SSH session's SIGHUP killed runstack alone and left web, worker and beat running."""
    import threading

    from ops.management.commands import runstack

    def unhandled(signum, frame):  # what the default action would have done: leave supervise at once
        raise SystemExit(f"{signal.Signals(signum).name} not handled")

    previous = signal.signal(signal.SIGHUP, unhandled)
    command = runstack.Command()
    command.launch = {"web": SLEEPER}
    processes = {"web": command.start("web")}
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGHUP)).start()
        assert command.supervise(processes) == 0
        assert processes["web"].returncode == -signal.SIGTERM
        assert signal.getsignal(signal.SIGHUP) is unhandled  # put back as it found it
    finally:
        signal.signal(signal.SIGHUP, previous)
        processes["web"].kill()
        processes["web"].wait(10)


def test_a_port_already_taken_stops_the_start_before_anything_is_migrated_or_started(monkeypatch):
    """A second `make run` on the same port migrated, started worker and beat (which delivered
    for a moment) and only then stopped them when the web server found the port taken."""
    import socket

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from ops.management.commands import runstack

    monkeypatch.setattr(runstack.Command, "prepare", lambda self: pytest.fail("migrated"))
    monkeypatch.setattr(runstack.Command, "spawn", lambda self, **kw: pytest.fail("started"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        monkeypatch.setenv("HOST", "127.0.0.1")
        monkeypatch.setenv("PORT", str(port))
        with pytest.raises(CommandError, match=f"Cannot serve on 127.0.0.1:{port} \\(HOST, PORT\\): Address already in use"):
            call_command("runstack")
    monkeypatch.setenv("HOST", "no-such-host.invalid")
    with pytest.raises(CommandError, match=f"Cannot serve on no-such-host.invalid:{port}"):
        call_command("runstack")


def test_an_empty_host_means_the_default_as_an_empty_number_does(monkeypatch):
    """HOST= (compose passes unset variables as "") made `runserver :8000`, which refused to start
    after worker and beat had."""
    from ops.management.commands import runstack

    monkeypatch.setenv("HOST", "")
    monkeypatch.setenv("PORT", "8123")
    assert runstack.Command().env.host == "127.0.0.1"
