"""`manage.py check --deploy`: what a production deployment of accounts needs set."""

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def public_base_url_reachable(app_configs, **kwargs):
    """Password reset emails link to PUBLIC_BASE_URL; its default (http://HOST:PORT) names this
    machine — 127.0.0.1, or 0.0.0.0 in the image — which no user can open."""
    host = (urlsplit(settings.PUBLIC_BASE_URL).hostname or "").strip("[]")
    try:
        local = ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        local = host in ("", "localhost") or host.endswith(".localhost")
    if settings.DEBUG or not local:
        return []
    return [checks.Warning(
        f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}: password reset emails would link to an address "
        "your users cannot open.", hint="Set PUBLIC_BASE_URL to where users reach this server "
                                         "(https://bookings.example.com).", id="accounts.W001")]
