"""Small request helpers shared by every app."""

import ipaddress
import logging
import re
from urllib.parse import unquote

from django.conf import settings
from django.urls import reverse


def client_ip(request) -> str | None:
    """The caller's IP: REMOTE_ADDR, or the X-Forwarded-For entry added by the outermost
    trusted proxy when TRUSTED_PROXY_COUNT proxies sit in front of the app."""
    ip = request.META.get("REMOTE_ADDR") or None
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            ip = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


def location(request, url_name: str, **kwargs) -> dict[str, str]:
    """The `Location` header of a 201 (the resource made) or a 202 (where to follow the job):
    the absolute URL of the `url_name` route, like the paging `Link` headers."""
    return {"Location": request.build_absolute_uri(reverse(url_name, kwargs=kwargs))}


def not_modified(request, etag: str) -> bool:
    """The request's If-None-Match names `etag` (or `*`): the client's copy is current, answer
    304. Weak validators (W/"…") match too, as RFC 9110 has it for If-None-Match."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}


# A password reset link's token (bookings_project/urls.py: accounts/reset/<uidb64>/<token>/) sets
# the account's password until it is used or expires: whoever reads a log must not be able to.
# (Django's page swaps it for "set-password" at once, so only the link's first request carries it.)
_RESET_TOKEN = re.compile(r"(/accounts/reset/[^/?#\s]+/)([^/?#\s]+)")
_NOT_A_TOKEN = frozenset({"set-password", "<token>"})  # the page's own next step, and ours


def _redact(match: re.Match) -> str:
    return match[0] if match[2] in _NOT_A_TOKEN else f"{match[1]}<token>"


def _holds_token(text: str) -> bool:
    return any(match[2] not in _NOT_A_TOKEN for match in _RESET_TOKEN.finditer(text))


def redact_log_record(record: logging.LogRecord) -> None:
    """The record's message, and its traceback's text (whose last line repeats the exception's
    message: it may be a request line), without a reset token."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: the handler reports it as it would without us
        return
    redacted = redact_reset_tokens(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_reset_tokens(logging.Formatter().formatException(record.exc_info))


def redact_reset_tokens(text: str) -> str:
    """`text` with any password reset link's token written as `<token>`. A link written with
    percent-escapes that Django decodes before routing it to the page (/accounts/re%73et/MQ/…/,
    …/MQ%2F…/) comes back decoded, its token redacted."""
    if "/reset/" in text:
        text = _RESET_TOKEN.sub(_redact, text)
    if "%" not in text:
        return text
    # Decoded, a token still standing is one the raw text hid; the decoded text is what gets redacted.
    decoded = unquote(text)
    return _RESET_TOKEN.sub(_redact, decoded) if _holds_token(decoded) else text


def no_store_by_default(get_response):
    """Middleware: a response without a caching policy of its own is `Cache-Control: no-store`.
    Tokens (RFC 6749 §5.1), profiles, bookings and exports are one account's data: no browser or
    proxy cache may keep them (a shared computer, a caching proxy). A response that says how it
    may be cached keeps its own (the item list's revalidated ETag, static files, the admin's)."""

    def middleware(request):
        response = get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response

    return middleware


def _drf_methods(view_func) -> tuple[str, ...]:
    """The HTTP methods a DRF view answers, in DRF's `Allow` order; () for any other view (it
    answers a wrong method itself)."""
    from rest_framework.views import APIView

    cls = getattr(view_func, "cls", None)
    if not (isinstance(cls, type) and issubclass(cls, APIView)):
        return ()
    names = getattr(view_func, "initkwargs", {}).get("http_method_names", cls.http_method_names)
    actions = getattr(view_func, "actions", None)  # a viewset route: its method → action map
    served = {name for name in names if (name in actions if actions is not None else hasattr(cls, name))}
    served.add("options")  # (APIView.options: DRF's metadata)
    if "get" in served:
        served.add("head")  # as Django's View.setup and DRF's viewsets give every GET route
    return tuple(name.upper() for name in names if name in served)


class MethodBeforeAuthMiddleware:
    """A method the route never takes is a 405 for every caller. DRF authenticates and checks
    roles before it looks for the method's handler, so `PATCH /api/v1/items/1` was a 401
    anonymously, a 403 "Requires the EVENT_ORGANIZER or ADMIN role" for a USER (as if an
    organizer could PATCH it) and a 405 only for an organizer."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._methods: dict = {}  # view function → its methods (the URL conf's views: a fixed few)

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        methods = self._methods.get(view_func)
        if methods is None:
            methods = self._methods[view_func] = _drf_methods(view_func)
        if not methods or request.method in methods:
            return None
        from .errors import json_error_response

        return json_error_response(request, 405, f'Method "{request.method}" not allowed.',
                                   {"Allow": ", ".join(methods)}, code="method_not_allowed")
