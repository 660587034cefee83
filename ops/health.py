"""Liveness and readiness probes."""

from functools import wraps

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bookings_project.errors import json_error_response


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


def _check_database(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    else:
        from bookings_project.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)


@probe
def readyz(request):
    checks = {"database": lambda: _check_database("default"),
              "documents": lambda: _check_database("documents"),
              "broker": _check_broker}
    results, failed = {}, []
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; say which and why
            results[name] = f"unavailable: {exc.__class__.__name__}"
            failed.append(name)
    body = {"status": "ok" if not failed else "unavailable", "checks": results}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)
