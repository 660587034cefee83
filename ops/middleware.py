"""Request ids: kept from the caller when well-formed, generated otherwise, echoed back and
attached to every log line written while the request runs."""

import contextvars
import logging
import re
import uuid

from django.conf import settings

from bookings_project.http import redact_log_record

from .checks import CONSOLE_EMAIL_BACKEND

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# fullmatch, not match with `$`: `$` also matches before a trailing newline, and "abc\n" kept as
# the response's X-Request-ID made Django refuse the header (a 500) and split the log line.
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def current_request_id() -> str:
    return request_id_var.get()


class RequestIDMiddleware:
    header = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(self.header, "")
        request_id = incoming if _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[self.header] = request_id
        return response


def _request_id_of(request) -> str | None:
    """The id the middleware gave this request, else the caller's valid X-Request-ID header."""
    request_id = getattr(request, "request_id", None)
    if request_id:
        return request_id
    headers = getattr(request, "headers", None)
    incoming = headers.get(RequestIDMiddleware.header, "") if headers is not None else ""
    return incoming if _VALID_ID.fullmatch(incoming) else None


class RequestIDLogFilter(logging.Filter):
    """Adds `request_id` to every record (and writes a password reset link's token as `<token>`).
    django.request logs a 4xx/5xx after the middleware has returned (and reset the context
    variable), so it falls back to the record's `request`."""

    def filter(self, record):
        request_id = request_id_var.get()
        if request_id == "-":
            request_id = _request_id_of(getattr(record, "request", None)) or "-"
        record.request_id = request_id
        # django.request names the path of a failed request: never a reset link's token. (Except
        # the console email backend's output in the worker: printing the email is its delivery.)
        if record.name == "celery.redirected" and settings.EMAIL_BACKEND == CONSOLE_EMAIL_BACKEND:
            return True
        redact_log_record(record)
        return True
