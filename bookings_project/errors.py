"""One error type and one handler: every error leaves the API in the contract's JSON envelope.

    {"status": 409, "error": "conflict", "code": "booking_time_conflict", "message": "...",
     "path": "...", "timestamp": "...", "fields": {"name": ["..."]}}   # fields only for validation errors

`error` names the status; `code` the reason, stable for clients to branch on (the message is for
people and may be reworded): a business error's own code, else a general one, else `error`.
"""

import logging
import sys
from collections.abc import Iterator
from http import HTTPStatus
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.utils import timezone
from rest_framework import exceptions as drf
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .db import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

# General reasons (`code`), where no business error names its own.
VALIDATION_FAILED = "validation_failed"  # the body or query string is invalid: see `fields`
DATABASE_UNAVAILABLE_CODE = "database_unavailable"

ERROR_SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc`, then what caused it (`raise … from`) or else what it was raised while handling,
    and so on: each exception once, even where the chain loops back."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


class ApplicationError(Exception):
    """A business error with an HTTP status; apps subclass it in their exceptions.py, each
    reason with its own `code` (snake_case, part of the API: never renamed)."""

    status = 400
    default_message = "Bad request"
    code: str | None = None  # None: the status's slug

    def __init__(self, message=None, *, status=None, fields=None, headers=None):
        self.message = message or self.default_message
        if status is not None:
            self.status = status
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    status = 400
    default_message = "Validation failed"
    code = VALIDATION_FAILED


def validation_failed(fields: dict[str, list[str]], default_message: str | None = None) -> ValidationFailed:
    """The 400 for flattened field errors (flatten_fields): errors of the whole object (DRF's
    non_field_errors) become its message, the rest its `fields`."""
    non_field = fields.pop("nonFieldErrors", None)
    return ValidationFailed(non_field[0] if non_field else default_message, fields=fields or None)


class NotFound(ApplicationError):
    status = 404
    default_message = "Not found"


class Forbidden(ApplicationError):
    status = 403
    default_message = "You do not have permission to perform this action"


class Conflict(ApplicationError):
    status = 409
    default_message = "Conflict"


class ServiceUnavailable(ApplicationError):
    status = 503
    default_message = "Service temporarily unavailable, retry shortly"

    def __init__(self, message=None, *, retry_after=2, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(retry_after))


class RateLimited(ApplicationError):
    status = 429
    default_message = "Too many requests, retry later"

    def __init__(self, message=None, *, retry_after=60, **kwargs):
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after)))


NOT_AUTHENTICATED_MESSAGE = ("Authentication required: send an access token as 'Authorization: Bearer <token>' "
                             "(from POST /api/v1/auth/login or /auth/login)")


def error_body(status: int, message: str, path: str, fields: dict | None = None, code: str | None = None) -> dict:
    slug = ERROR_SLUGS.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    body = {
        "status": status,
        "error": slug,
        "code": code or slug,
        "message": message,
        "path": path,
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
    }
    if fields:
        body["fields"] = fields
    return body


def flatten_fields(detail, prefix="") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field": [...], "priceTiers.0.price": [...]}; errors of a
    whole (nested) object, DRF's `non_field_errors`, go under the object's own name."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                name = prefix or "nonFieldErrors"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_fields(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            out[prefix or "nonFieldErrors"] = [str(v) for v in detail]
        else:
            for index, value in enumerate(detail):
                if value:
                    for k, v in flatten_fields(value, f"{prefix}.{index}" if prefix else str(index)).items():
                        out.setdefault(k, []).extend(v)
    else:
        out[prefix or "nonFieldErrors"] = [str(detail)]
    return out


class _Described(NamedTuple):
    status: int
    message: str
    fields: dict | None = None
    headers: dict = {}
    code: str | None = None  # None: the status's slug


def _describe(exc) -> _Described:
    """The envelope's parts for any exception, or raise it back if unknown."""
    if isinstance(exc, ApplicationError):
        return _Described(exc.status, exc.message, exc.fields, exc.headers, exc.code)
    if isinstance(exc, drf.ValidationError):
        return _describe(validation_failed(flatten_fields(exc.detail)))
    if isinstance(exc, drf.ParseError):
        return _Described(400, f"Malformed request body: {exc.detail}", code="malformed_body")
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        # No token sent (NotAuthenticated, whatever its message) vs. one sent but refused.
        code = "not_authenticated" if isinstance(exc, drf.NotAuthenticated) else "invalid_token"
        message = exc.detail if isinstance(exc.detail, str) else "Invalid or expired token"
        if str(message) == str(drf.NotAuthenticated.default_detail):
            message = NOT_AUTHENTICATED_MESSAGE
        return _Described(401, str(message), headers={"WWW-Authenticate": 'Bearer realm="api"'}, code=code)
    if isinstance(exc, drf.UnsupportedMediaType):
        return _Described(415, f"{str(exc.detail).rstrip('.')}: send the body as JSON (Content-Type: application/json)")
    if isinstance(exc, drf.Throttled):
        return _Described(429, "Too many requests, retry later", headers={"Retry-After": str(exc.wait or 60)})
    if isinstance(exc, drf.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
        return _Described(exc.status_code, str(detail))
    if isinstance(exc, Http404):
        return _Described(404, "Not found")
    if isinstance(exc, PermissionDenied):
        return _Described(403, str(exc) or Forbidden.default_message)
    if isinstance(exc, RequestDataTooBig):
        return _Described(413, "Request body too large")
    if isinstance(exc, SuspiciousOperation):
        return _Described(400, "Bad request")
    if isinstance(exc, DATABASE_UNAVAILABLE):
        logger.warning("Database unavailable: %s", exc)
        return _Described(503, DATABASE_UNAVAILABLE_MESSAGE, headers={"Retry-After": "2"}, code=DATABASE_UNAVAILABLE_CODE)
    raise exc


def exception_handler(exc, context):
    request = context.get("request")
    path = request.path if request is not None else ""
    if request is not None:  # errors are JSON even where the view renders CSV (or could not negotiate)
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
    try:
        error = _describe(exc)
    except Exception:
        if settings.DEBUG:
            return None  # Django's debug page shows the traceback in development.
        logger.exception("Unhandled error on %s", path)
        error = _Described(500, "Internal server error")
    return Response(error_body(error.status, str(error.message), path, error.fields, error.code), status=error.status,
                    headers=error.headers)


def json_error_response(request, status: int, message: str, headers: dict | None = None,
                        code: str | None = None) -> JsonResponse:
    response = JsonResponse(error_body(status, message, request.path, code=code), status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


# Django-level handlers (outside DRF views): unknown routes, CSRF, crashes.
def handler400(request, exception=None):
    return json_error_response(request, 400, "Bad request")


def handler403(request, exception=None):
    return json_error_response(request, 403, Forbidden.default_message)


@csrf_exempt
def handler404(request, exception=None, **kwargs):
    """Unknown routes (also the URL conf's catch-all, so no CSRF check on a route that does nothing)."""
    return json_error_response(request, 404, "Not found")


DATABASE_UNAVAILABLE_MESSAGE = "Database temporarily unavailable, retry shortly"


def handler500(request):
    """Outside DRF (the admin, its login page): a database outage is a 503 with Retry-After,
    as in the API, not a 500 (Django calls this inside its except block: the error is at hand)."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        return json_error_response(request, 503, DATABASE_UNAVAILABLE_MESSAGE, {"Retry-After": "2"},
                                   code=DATABASE_UNAVAILABLE_CODE)
    return json_error_response(request, 500, "Internal server error")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: session-authenticated form posts (the admin) that fail CSRF."""
    return json_error_response(request, 403, f"CSRF verification failed: {reason}" if reason else "CSRF verification failed")
