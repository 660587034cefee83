"""`manage.py check --deploy`: what a production deployment of accounts needs set."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def public_base_url_reachable(app_configs, **kwargs):
    """Password reset emails link to PUBLIC_BASE_URL; its default (http://HOST:PORT) names this
    machine — 127.0.0.1, or 0.0.0.0 in the image — which no user can open."""
    if settings.DEBUG or not names_this_machine((urlsplit(settings.PUBLIC_BASE_URL).hostname or "")):
        return []
    return [checks.Warning(
        f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}: password reset emails would link to an address "
        "your users cannot open.", hint="Set PUBLIC_BASE_URL to where users reach this server "
                                         "(https://bookings.example.com).", id="accounts.W001")]


def names_this_machine(host: str) -> bool:
    """A loopback or unspecified address in any spelling (`127.1`, `::ffff:127.0.0.1`, `[::]`), or
    localhost (`localhost.`, `*.localhost`)."""
    host = host.strip("[]").rstrip(".").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))  # (the short IPv4 forms: 127.1, 0)
        except OSError:
            return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified
