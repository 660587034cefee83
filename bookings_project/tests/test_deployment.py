"""The production shape as files: docker-compose.yml describes the whole system consistently
(no Docker engine on CI machines, so this checks the file itself), and beat schedules the
periodic work with tasks that exist."""

from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_describes_every_part_of_the_production_shape(compose):
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "mailpit"} <= set(services)
    command = lambda name: " ".join(services[name]["command"])  # noqa: E731
    assert command("web") == "gunicorn -c python:bookings_project.gunicorn bookings_project.wsgi"
    assert "exec celery -A bookings_project worker" in command("worker")
    assert services["beat"]["command"][:4] == ["celery", "-A", "bookings_project", "beat"]
    assert services["postgres"]["image"].startswith("postgres") and services["redis"]["image"].startswith("redis")


def test_the_web_container_serves_with_the_shared_gunicorn_settings(compose, monkeypatch):
    """One gunicorn configuration for make run, the Dockerfile and compose, read from the
    environment the container gets: compose's defaults and the image's HOST/PORT."""
    import importlib
    import re

    from bookings_project import gunicorn

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"-c", "python:bookings_project.gunicorn"' in dockerfile
    monkeypatch.setenv("HOST", re.search(r"HOST=(\S+)", dockerfile)[1])
    monkeypatch.setenv("PORT", re.search(r"PORT=(\S+)", dockerfile)[1])
    for name, value in compose["services"]["web"]["environment"].items():
        if name.startswith("WEB_"):
            monkeypatch.setenv(name, re.fullmatch(r"\$\{\w+:-(\w+)\}", value)[1])
    try:
        conf = importlib.reload(gunicorn)
        assert (conf.bind, conf.workers, conf.threads) == ("0.0.0.0:8000", 4, 4)
        assert conf.accesslog == "-" and "{x-request-id}o" in conf.access_log_format
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn)


@pytest.mark.parametrize("path", ["/accounts/reset/MQ/cz1xyz-0123456789abcdef0123456789abcdef/",
                                  "/accounts/reset/MQ/cz1xyz-0123456789abcdef0123456789abcdef/?utm=mail"])
def test_the_access_log_does_not_carry_a_password_reset_token(path, monkeypatch):
    """The link's token sets the account's password for PASSWORD_RESET_TTL, until used: whoever
    reads the access log (operators, a log service) must not be able to use it. The line still
    says a reset link was opened, and for which account."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.app.wsgiapp import WSGIApplication

    monkeypatch.setattr("sys.argv", ["gunicorn", "bookings_project.wsgi"])  # (it parses the command line: not pytest's)
    app = WSGIApplication()
    app.load_config_from_module_name_or_filename("python:bookings_project.gunicorn")
    logger = app.cfg.logger_class(app.cfg)
    raw, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": raw, "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1", "HTTP_REFERER": f"https://x.example{path}"}
    response = SimpleNamespace(status="302 Found", sent=0, headers=[("X-Request-ID", "r-1")])
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    line = app.cfg.access_log_format % logger.atoms_wrapper_class(atoms)
    assert "/accounts/reset/MQ/" in line and "r-1" in line, line
    assert not [name for name, value in atoms.items() if "cz1xyz" in str(value)], line


def test_every_third_party_image_is_pinned_to_a_version(compose):
    """A rebuild must not silently pull a new major version of a service (ours is built locally)."""
    images = {name: service["image"] for name, service in compose["services"].items()
              if "image" in service and "build" not in service and not service["image"].startswith("bookings:")}
    assert {"postgres", "redis", "mailpit"} <= set(images)
    for name, image in images.items():
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert tag and tag != "latest" and any(c.isdigit() for c in tag), f"{name}: {image} is not pinned"


def test_compose_references_are_consistent(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose.get("volumes", {}), f"{name} uses undeclared volume {source}"
    assert (ROOT / "Dockerfile").exists()


def test_app_services_get_the_contract_configuration(compose):
    for name in ("web", "worker", "beat", "migrate"):
        env = compose["services"][name]["environment"]
        for variable in ("DATABASE_URL", "DOCUMENTS_DATABASE_URL", "REDIS_URL", "EMAIL_HOST", "EMAIL_PORT",
                         "SECRET_KEY", "JWT_SIGNING_KEY"):
            assert variable in env, f"{name} lacks {variable}"
        assert env["DEBUG"] == "0"
        assert env["EMAIL_HOST"] == "${EMAIL_HOST:-mailpit}" and env["REDIS_URL"].startswith("redis://redis:")
        assert env["DEMO_DATA"] == "${DEMO_DATA:-0}"  # no demo accounts in production unless asked for
        assert all(f"DJANGO_SUPERUSER_{part}" in env for part in ("USERNAME", "EMAIL", "PASSWORD"))
        assert env["DATABASE_URL"] != env["DOCUMENTS_DATABASE_URL"]


def test_beat_schedules_the_outbox_sweep_and_nightly_reconciliation():
    from celery.schedules import crontab

    from bookings_project.celery import app

    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE
    for entry in schedule.values():
        assert entry["task"] in app.tasks, f"beat schedules unknown task {entry['task']}"
    assert schedule["outbox-sweep"]["schedule"] <= 10
    nightly = schedule["reconcile-all"]["schedule"]
    assert isinstance(nightly, crontab) and nightly.hour == {3} and nightly.minute == {0}
    # Sweeps queued while no worker runs expire instead of piling up in the broker.
    assert 0 < schedule["outbox-sweep"]["options"]["expires"] <= schedule["outbox-sweep"]["schedule"]
    assert schedule["reconcile-all"]["options"]["expires"] <= 3600


@pytest.mark.django_db
def test_nightly_task_queues_a_full_reconciliation_of_both_types():
    from ops.models import Job, OutboxEvent
    from ops.tasks import reconciliation_schedule_all_task

    reconciliation_schedule_all_task()
    jobs = Job.objects.all()
    assert sorted(j.params["entityType"] for j in jobs) == ["booking", "item"]
    assert all(j.params["entityId"] is None and j.status == "queued" for j in jobs)
    assert OutboxEvent.objects.filter(event_type="JOB_RUN").count() == 2  # they run on their own



def test_the_embedded_broker_and_the_worker_s_console_emails_do_not_log_warnings(tmp_path):
    """`make run` as the README has it: kombu warned "No hostname was supplied. Reverting to
    default 'localhost'" in every process (the filesystem broker has no host), and each email the
    console backend prints in the worker was logged as a WARNING of celery.redirected: an
    operator reading (or alerting on) warnings saw a broker problem and one per email sent."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    code = ("from bookings_project.celery import app\n"
            "with app.connection_for_write() as connection:\n"
            "    connection.info()\n"
            "print(app.conf.broker_url, app.conf.worker_redirect_stdouts_level)")
    run = subprocess.run([sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", code], cwd=settings.BASE_DIR, text=True,
                         capture_output=True, timeout=60, env={**env, "VAR_DIR": str(tmp_path)})

    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["filesystem://localhost/", "INFO"]
    assert "WARNING" not in run.stderr, run.stderr


def test_the_web_healthcheck_asks_whether_the_process_lives_not_whether_its_dependencies_do(compose):
    """A container healthcheck decides restarts (Swarm replaces an unhealthy task, autoheal
    restarts it): on /readyz a PostgreSQL or Redis outage marked every web container unhealthy,
    and restarting them cures nothing. /readyz is for what routes traffic (a load balancer)."""
    test = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in test and "readyz" not in test
