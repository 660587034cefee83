"""Per-client-IP rate limits (django-ratelimit counters in the shared cache) raising the
contract's 429 with Retry-After. Cache failure behaviour: see bookings_project/cache.py."""

import functools

from django.conf import settings
from django_ratelimit.core import get_usage

from .errors import RateLimited
from .http import client_ip


def _ip_key(group, request):
    return client_ip(request) or "unknown"


def rate_limit_hit(request, *, group: str, rate_setting: str) -> int | None:
    """Count this request against its client IP's limit; seconds to wait if it is over, else None."""
    usage = get_usage(request, group=group, key=_ip_key, rate=getattr(settings, rate_setting), increment=True)
    if usage is not None and usage["should_limit"]:
        return usage["time_left"] or 1
    return None


def rate_limit(*, group: str, rate_setting: str):
    """Decorate an APIView handler: `rate_setting` names the settings value (e.g. "10/m")."""

    def decorator(handler):
        @functools.wraps(handler)
        def wrapped(self, request, *args, **kwargs):
            retry_after = rate_limit_hit(request, group=group, rate_setting=rate_setting)
            if retry_after is not None:
                raise RateLimited(retry_after=retry_after)
            return handler(self, request, *args, **kwargs)

        return wrapped

    return decorator


__all__ = ["rate_limit", "rate_limit_hit"]
