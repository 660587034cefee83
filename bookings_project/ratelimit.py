"""Rate limits (django-ratelimit counters in the shared cache) raising the contract's 429 with
Retry-After: per client address for the anonymous endpoints (login, refresh, registration), per
account for what a signed-in user may repeat (system log entries). Cache failure behaviour: see
bookings_project/cache.py."""

import functools
import ipaddress

from django.conf import settings
from django_ratelimit.core import get_usage

from .errors import RateLimited
from .http import client_ip


def client_key(ip: str | None) -> str:
    """Whom an address-keyed limit counts: an IPv4 address, or an IPv6 host's /64 — one host
    usually holds a whole /64, so counting single IPv6 addresses would give it no limit at all.
    An IPv4-mapped IPv6 address counts as its IPv4 address."""
    if not ip:
        return "unknown"
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _ip_key(group, request):
    return client_key(client_ip(request))


def _user_key(group, request):
    return f"user:{request.user.pk}"


def _user_path_key(group, request):
    # The route and its converted arguments, not the path's text: /user/05/export is user 5 too.
    match = request.resolver_match
    return f"user:{request.user.pk}:{match.view_name}:{sorted(match.kwargs.items())}"


# "user_path": per account and resource (an ADMIN exporting many accounts' data, one each).
KEYS = {"ip": _ip_key, "user": _user_key, "user_path": _user_path_key}


def rate_limit_hit(request, *, group: str, rate_setting: str, per: str = "ip") -> int | None:
    """Count this request against its client's (`per="ip"`) or signed-in account's
    (`per="user"`) limit; seconds to wait if it is over, else None."""
    usage = get_usage(request, group=group, key=KEYS[per], rate=getattr(settings, rate_setting), increment=True)
    if usage is not None and usage["should_limit"]:
        return usage["time_left"] or 1
    return None


def rate_limit(*, group: str, rate_setting: str, per: str = "ip"):
    """Decorate an APIView handler: `rate_setting` names the settings value (e.g. "10/m")."""

    def decorator(handler):
        @functools.wraps(handler)
        def wrapped(self, request, *args, **kwargs):
            retry_after = rate_limit_hit(request, group=group, rate_setting=rate_setting, per=per)
            if retry_after is not None:
                raise RateLimited(retry_after=retry_after)
            return handler(self, request, *args, **kwargs)

        return wrapped

    return decorator


__all__ = ["rate_limit", "rate_limit_hit"]
