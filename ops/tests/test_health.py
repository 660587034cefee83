"""Liveness and readiness probes (contract §1)."""

import pytest
from django.db import OperationalError

from bookings_project.testing import REVOKED_CALLERS
from ops import health

pytestmark = pytest.mark.django_db(databases=["default", "documents"])


def test_healthz_is_ok(api_client):
    response = api_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_check(api_client):
    response = api_client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok",
                               "checks": {"database": "ok", "documents": "ok", "broker": "ok", "outbox": "ok"}}


def test_readyz_tells_when_outbox_events_wait_with_no_dispatcher_taking_them(api_client):
    """A stopped worker or beat loses nothing (the events wait in the database), so the probe
    stays 200 — but it says delivery is behind, and since when."""
    from datetime import timedelta

    from django.utils import timezone

    from ops.models import OutboxEvent
    from ops.outbox import EventType, outbox_enqueue

    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="a@example.com", payload={})
    assert api_client.get("/readyz").json()["checks"]["outbox"] == "ok"  # just queued: not behind
    OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=300))

    response = api_client.get("/readyz")

    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.json()["checks"]["outbox"].startswith("stalled: an event has been due for 30")


@pytest.mark.parametrize("waited, stalled", [(90, False), (150, True)])
def test_readyz_and_status_call_delivery_stalled_at_the_same_wait(api_client, waited, stalled):
    """One measurement, one threshold: the probe, `manage.py status` and the admin's index never
    disagree about whether delivery has stalled."""
    from datetime import timedelta

    from django.utils import timezone

    from ops.outbox import EventType, outbox_enqueue
    from ops.models import OutboxEvent
    from ops.status import status_report

    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="a@example.com", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=waited))

    probe_says = api_client.get("/readyz").json()["checks"]["outbox"]
    _, problems = status_report()

    assert probe_says.startswith("stalled") is stalled, probe_says
    assert any("delivery stalled" in problem.text for problem in problems) is stalled, problems


@pytest.mark.parametrize("alias, check", [("default", "database"), ("documents", "documents")])
def test_readyz_is_503_naming_the_unreachable_database(api_client, broken_database, alias, check):
    broken_database(alias)
    response = api_client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == [check]
    assert body["checks"][check].startswith("unavailable")
    assert all(state == "ok" for name, state in body["checks"].items() if name != check)
    assert "connection refused" not in response.content.decode()  # no server details leak


def test_readyz_logs_the_failed_check_with_its_error_once_per_outage(api_client, broken_database, caplog):
    """The body names only the error's class; the log says which check failed, and why — once
    per outage, not on each of a load balancer's probes — and when it passes again."""
    from ops import health

    for outage in health._READINESS_OUTAGES.values():
        outage.reset()
    restore = broken_database("documents")
    with caplog.at_level("WARNING", logger="ops.health"):
        for _ in range(3):
            assert api_client.get("/readyz").status_code == 503
        restore()
        assert api_client.get("/readyz").status_code == 200
    failed, passes = [r for r in caplog.records if r.name == "ops.health"]
    assert "'documents'" in failed.getMessage() and isinstance(failed.exc_info[1], OperationalError)
    assert "connection refused" in caplog.text
    assert passes.getMessage() == "readiness check 'documents' passes again"


def test_a_database_lost_between_its_check_and_the_outbox_read_is_a_clean_503(api_client, monkeypatch, caplog):
    """A restart can land between the ping and the outbox query: the probe answers its own 503
    naming the database, its error logged once by the readiness check — not Django's error page
    with the traceback logged as a request's crash. (Seen once in the fault test's log under a
    database restart.)"""
    from django.db import OperationalError

    from ops import health

    for outage in health._READINESS_OUTAGES.values():
        outage.reset()

    def lost():
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(health, "_outbox_delivery", lost)
    with caplog.at_level("WARNING"):
        response = api_client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"] and body["checks"]["database"] == "unavailable: OperationalError", body
    with_traceback = [(r.name, r.getMessage()) for r in caplog.records if r.exc_info]
    assert with_traceback == [("ops.health", "readiness check 'database' failed: server closed the connection "
                                             "unexpectedly")], caplog.text


def test_readyz_checks_the_dependencies_side_by_side(api_client, monkeypatch):
    """A PostgreSQL server that is down holds both databases' pings for the pool's timeout: the
    probe waits that once, not once per database."""
    import time

    real = health.database_ping

    def slow(alias):
        time.sleep(1)
        real(alias)

    monkeypatch.setattr(health, "database_ping", slow)
    started = time.monotonic()
    assert api_client.get("/readyz").status_code == 200
    assert time.monotonic() - started < 1.8


def test_a_database_that_hangs_is_unavailable_within_the_probes_bound(api_client, monkeypatch):
    """A documents database that hangs with its connections open (a frozen server: no refusal,
    no reply) held each probe's web thread as long as it hung: a load balancer probing every few
    seconds took one thread after another from the bookings."""
    import threading
    import time

    real, released = health.database_ping, threading.Event()

    def hanging(alias):
        if alias == "documents":
            released.wait(30)
        real(alias)

    monkeypatch.setattr(health, "database_ping", hanging)
    monkeypatch.setattr(health, "DEPENDENCY_WAIT_SECONDS", 0.5)
    started = time.monotonic()
    try:
        response = api_client.get("/readyz")
    finally:
        released.set()
    assert time.monotonic() - started < 1.5
    assert response.status_code == 503 and response.json()["failed"] == ["documents"]
    assert response.json()["checks"]["documents"] == "unavailable: TimeoutError"


def test_readyz_is_503_when_the_broker_is_down(api_client, monkeypatch):
    def unreachable():
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(health, "_check_broker", unreachable)
    response = api_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


@pytest.mark.parametrize("token", ["garbage", "a USER's", "an IT_OPERATOR's", *REVOKED_CALLERS])
def test_probes_need_no_token_and_look_at_none(api_client, make_user, client_for, revoked_client_for, token):
    """Probes answer whatever Authorization header comes along (a load balancer sends none)."""
    if token == "garbage":
        api_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
        client = api_client
    elif token in REVOKED_CALLERS:
        client = revoked_client_for(token)
    else:
        client = client_for(make_user(roles=["USER" if "USER" in token else "IT_OPERATOR"]))
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_other_methods_405_json_not_a_csrf_403(api_client, method, path):
    response = getattr(api_client, method)(path)
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["status"] == 405


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_whatever_host_the_prober_names(api_client, settings, path):
    """A production ALLOWED_HOSTS names the public host only, and a probe names whatever it
    connects to — compose's healthcheck `127.0.0.1:8000`, a kubelet the pod's IP: Django's host
    check made every probe a 400 and the container unhealthy for good. The probes build no URL
    from the host; everything else still checks it."""
    settings.ALLOWED_HOSTS = ["bookings.example.com"]
    response = api_client.get(path, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200, response.content
    assert response["X-Request-ID"]
    assert api_client.get(f"{path}/", HTTP_HOST="10.1.2.3:8000").status_code == 400  # only the probes
    assert api_client.get("/api/v1/items", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert api_client.get(path, HTTP_HOST="bookings.example.com").status_code == 200


def test_probes_of_a_hung_database_share_one_check_thread(api_client, monkeypatch):
    """Each probe of a hung database started a ping thread of its own, and each stayed until the
    server's bound (DB_STATEMENT_TIMEOUT_MS + 5 s) let it go: a load balancer probing every few
    seconds piled them up. A probe now waits for the check still running; once it ends, the next
    probe checks afresh."""
    import threading

    real, released, pings = health.database_ping, threading.Event(), []

    def hanging(alias):
        if alias == "documents":
            pings.append(alias)
            released.wait(30)
        real(alias)

    monkeypatch.setattr(health, "database_ping", hanging)
    monkeypatch.setattr(health, "DEPENDENCY_WAIT_SECONDS", 0.2)
    try:
        for _ in range(4):
            response = api_client.get("/readyz")
            assert response.status_code == 503 and response.json()["failed"] == ["documents"]
        assert pings == ["documents"]
        assert sum(t.name == "dependency-check-documents" for t in threading.enumerate()) == 1
    finally:
        released.set()
    health._RUNNING["documents"].done.wait(5)
    assert api_client.get("/readyz").status_code == 200
    assert api_client.get("/readyz").status_code == 200
    assert len(pings) == 3
