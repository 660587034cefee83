"""Liveness and readiness probes."""

import contextvars
import logging
import threading
import time
from functools import wraps

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from bookings_project.cache import OutageLog
from bookings_project.db import database_ping
from bookings_project.errors import json_error_response

from .models import OutboxEvent, OutboxStatus

logger = logging.getLogger(__name__)

# An outbox event due this long and still not taken means no dispatcher is running (the Celery
# worker or beat is down): beat's sweep takes due events every OUTBOX_SWEEP_SECONDS. One
# threshold for /readyz, `manage.py status` and the documented alert (OPERATIONS.md).
OUTBOX_STALLED_SECONDS = 120
# A dependency whose check has not answered after this long counts as down, in /readyz and in
# GET /metrics alike: a database that hangs would otherwise hold the probe's web thread as long
# as it hangs (a load balancer probes every few seconds), and a scrape must answer inside
# Prometheus' scrape_timeout (10 s by default) while a database that is down holds its ping for
# the pool's DB_POOL_TIMEOUT (10 s).
DEPENDENCY_WAIT_SECONDS = 4.0


def probe(view):
    """GET/HEAD only, answered 405 JSON otherwise (not a CSRF 403: probes have no session)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return json_error_response(request, 405, f'Method "{request.method}" not allowed.', {"Allow": "GET, HEAD"})
        return view(request, *args, **kwargs)

    return wrapper


@probe
def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_broker() -> None:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    else:
        from bookings_project.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)


def _outbox_delivery() -> str:
    """"ok", or how long the longest-waiting due event has waited. Told, not failed: the
    contract's 503 names the databases and the broker, and the events wait safely in the DB."""
    now = timezone.now()
    oldest = (OutboxEvent.objects.filter(status=OutboxStatus.PENDING,
                                         next_attempt_at__lte=now - timedelta(seconds=OUTBOX_STALLED_SECONDS))
              .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first())
    if oldest is None:
        return "ok"
    return f"stalled: an event has been due for {int((now - oldest).total_seconds())} s (is a worker running, and beat?)"


_READINESS_OUTAGES = {name: OutageLog(logger, f"readiness check {name!r} failed: %s",
                                      f"readiness check {name!r} passes again", traceback=True)
                      for name in ("database", "documents", "broker")}


class _Check:
    """One run of one dependency's check, in a thread of its own; `outcome` is set when it ends."""

    def __init__(self, name, check):
        self.done = threading.Event()
        self.outcome: Exception | None = None
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run, check),
                                       name=f"dependency-check-{name}", daemon=True)

    def _run(self, check):
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the caller says which
            self.outcome = exc
        finally:
            connections.close_all()  # this thread's own connections: back to the pool, or closed
            self.done.set()


# The check of each dependency still running in this process: a later probe waits for it
# rather than starting another, so a database that hangs holds one thread per dependency
# however often the load balancer asks (a new thread per probe piled up until the hung server's
# bound, DB_STATEMENT_TIMEOUT_MS + 5 s, let each go).
_RUNNING: dict[str, _Check] = {}
_RUNNING_LOCK = threading.Lock()


def _check_started(name, check) -> _Check:
    with _RUNNING_LOCK:
        running = _RUNNING.get(name)
        if running is not None and not running.done.is_set():
            return running
        _RUNNING[name] = running = _Check(name, check)
    running.thread.start()
    return running


def dependencies_check(*, log: bool = True) -> dict[str, Exception | None]:
    """Each dependency the system cannot serve without (both databases, the broker): None when
    it answers, else the error. A failure is logged once per outage, with its traceback (not
    with `log` False: a shell command that prints the outcome itself, `manage.py status`).

    The checks run side by side, each in a thread of its own: a database that is down keeps its
    ping waiting for the pool (DB_POOL_TIMEOUT, 10 s), and one PostgreSQL server usually holds
    both databases. A check that has not answered after DEPENDENCY_WAIT_SECONDS counts as failed
    (a TimeoutError); it finishes in the background, and a probe meanwhile waits for that same
    check instead of starting another."""
    checks = {"database": lambda: database_ping("default"),
              "documents": lambda: database_ping("documents"),
              "broker": _check_broker}
    running = {name: _check_started(name, check) for name, check in checks.items()}
    within = DEPENDENCY_WAIT_SECONDS
    deadline = time.monotonic() + within
    results = {}
    for name, run in running.items():
        answered = run.done.wait(max(0.0, deadline - time.monotonic()))
        exc = run.outcome if answered else TimeoutError(f"no answer within {within:g} s")
        results[name] = exc
        if not log:
            continue
        if exc is None:
            _READINESS_OUTAGES[name].answered()
        else:
            _READINESS_OUTAGES[name].failed(exc)
    return results


@probe
def readyz(request):
    # (the body names only the error's class: the server's details go to the log, once per
    # outage — a load balancer asks every few seconds)
    errors = dependencies_check()
    results = {name: "ok" if exc is None else f"unavailable: {exc.__class__.__name__}" for name, exc in errors.items()}
    failed = [name for name, exc in errors.items() if exc is not None]
    if "database" not in failed:
        try:
            results["outbox"] = _outbox_delivery()
        except DatabaseError as exc:  # (it stopped answering since its check — a restart —, or is not migrated)
            results["database"] = f"unavailable: {exc.__class__.__name__}"
            failed.insert(0, "database")
            _READINESS_OUTAGES["database"].failed(exc)
    body = {"status": "ok" if not failed else "unavailable", "checks": results}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


PROBES = {"/healthz": healthz, "/readyz": readyz}


def probes_any_host(get_response):
    """Middleware: answers the probes before Django's host check (CommonMiddleware), so they
    work whatever Host a prober names — compose's healthcheck `127.0.0.1:8000`, a kubelet the
    pod's IP — while a production ALLOWED_HOSTS names only the public host. A probe's answer
    builds no URL from the host, which is what that check protects."""

    def middleware(request):
        view = PROBES.get(request.path_info)
        return view(request) if view is not None else get_response(request)

    return middleware
