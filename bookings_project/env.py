"""Reading settings from environment variables: each reader turns a bad value into one
ImproperlyConfigured line naming the variable (manage.py prints it as "Configuration error: …"),
so a typo stops every process at start instead of failing requests later."""

import ipaddress
import os
import re
import zoneinfo
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); anything else is a mistake, not "off": read
    as off, `RATE_LIMIT_ENABLED=ture` turned rate limiting off and `DEBUG=treu` was production."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in TRUE | FALSE:
        raise ImproperlyConfigured(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")
    return value in TRUE


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer, within [minimum, maximum] when given: a negative port, a zero batch size or a
    token that expires as it is issued stops every process at start, naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f"from {minimum} to {maximum}" if maximum is not None and minimum is not None
                  else f"at least {minimum}" if minimum is not None else f"at most {maximum}")
        raise ImproperlyConfigured(f"{name} must be {bounds}, got {value}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name: str, default: str) -> str:
    """A logging level name (any case); an unknown one made logging's configuration fail with a
    traceback in every process."""
    raw = env_str(name, default)
    if raw.strip().upper() not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw.strip().upper()


def env_redis_url(name: str) -> str:
    """Empty (embedded mode) or a Redis URL; anything else failed only later, on the first
    request that needed the cache or the broker."""
    raw = env_str(name, "").strip()
    if raw and not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name} must be a Redis URL (redis://host:6379/0, rediss://…, unix://…) "
                                   f"or unset, got {raw!r}")
    return raw


# django-ratelimit's rate syntax, strictly: its own parser reads "10/M" as 10 per second and
# fails on every request (a 500 on each login) for "abc". It reads a unit by its first letter, so
# the spelled-out units it accepts ("10/minute") are accepted here too.
RATE = re.compile(r"(?P<count>\d+)/(?P<multiple>[1-9]\d*)?"
                  r"(?:s|m|h|d|secs?|seconds?|mins?|minutes?|hours?|days?)")


def env_rate(name: str, default: str) -> str:
    raw = env_str(name, default)
    if not RATE.fullmatch(raw):
        raise ImproperlyConfigured(f"{name} must be a rate like 10/m, 100/hour or 5/10s (lowercase s, m, h, d), "
                                   f"got {raw!r}")
    return raw


def env_list(name: str, default: str) -> list[str]:
    """Comma-separated values; none at all (unset, empty, only commas and spaces) is the default,
    as an empty number is: `ALLOWED_HOSTS=` read as no host made production answer every request
    with a 400, and `PASSWORD_HASHERS=` as no hasher failed every login."""
    parts = [part.strip() for part in env_str(name, default).split(",") if part.strip()]
    return parts or [part.strip() for part in default.split(",") if part.strip()]


def env_origins(name: str) -> list[str]:
    """Comma-separated web origins (`https://app.example.com`, a port if not the scheme's own),
    or `*` alone for any origin; none by default. Each must be written as a browser's `Origin`
    header writes it — the middleware compares the text — so `https://App.example.com`, a default
    port or an IDN host are refused naming that form instead of never being answered."""
    origins = env_list(name, "")
    if origins == ["*"]:
        return origins
    for origin in origins:
        canonical = _serialized_origin(origin)
        if canonical is None:
            raise ImproperlyConfigured(f"{name} must list origins like https://app.example.com (scheme, host and "
                                       f"port only; or * alone for any origin), got {origin!r}")
        if canonical != origin:
            raise ImproperlyConfigured(f"{name} must list each origin as a browser sends it: {canonical!r}, "
                                       f"not {origin!r}")
    return origins


def _serialized_origin(origin: str) -> str | None:
    """`origin` as browsers serialize it (lower-case host, IDNA, shortest IPv6, no default port),
    or None when it is not an http(s) origin at all."""
    try:
        parts = urlsplit(origin)
        port = parts.port  # (a port out of range or not a number raises, as a bad IPv6 address does)
    except ValueError:
        return None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
            or parts.password is not None or origin.lower() != f"{parts.scheme}://{parts.netloc.lower()}"):
        return None
    host = parts.hostname
    try:
        host = f"[{ipaddress.IPv6Address(host).compressed}]" if ":" in host else host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def statement_timeout_ms() -> int:
    """PostgreSQL's statement_timeout (DB_STATEMENT_TIMEOUT_MS; 0: none), which the client's
    bound on a hung server follows too (settings.DB_HUNG_SERVER_SECONDS)."""
    return env_int("DB_STATEMENT_TIMEOUT_MS", 30000, 0)


def env_time_zone(name: str, default: str) -> str:
    """An IANA zone name. Django checks the name only against a system zoneinfo directory, and
    never an empty one: left unchecked, every request failed (answered as "Database temporarily
    unavailable")."""
    value = env_str(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone name like 'Europe/Berlin' or 'UTC', got {value!r}") from None
    return value


def env_crontab(name: str, default: str):
    """A cron expression (five fields: minute hour day-of-month month day-of-week)."""
    from celery.schedules import crontab

    expression = env_str(name, default)
    try:
        minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)
    except ValueError as exc:  # a wrong field count, or celery's ParseException (a ValueError)
        raise ImproperlyConfigured(f"{name} must be a cron expression like '0 3 * * *' (minute hour "
                                   f"day-of-month month day-of-week), got {expression!r}") from exc


SUPPORTED_ENGINES = {"django.db.backends.sqlite3", "django.db.backends.postgresql",
                     "django.db.backends.postgresql_psycopg2"}


def database_from_url(url: str, name: str = "DATABASE_URL") -> dict:
    try:
        config = dj_database_url.parse(url)
    except ValueError as exc:  # dj_database_url's UnknownSchemeError included
        raise ImproperlyConfigured(f"{name} is not a database URL (sqlite:///path or postgres://…): "
                                   f"{exc.__class__.__name__} {exc}") from exc
    engine = config["ENGINE"]
    scheme = url.partition(":")[0]  # (never the URL itself: it may hold a password)
    if engine not in SUPPORTED_ENGINES:
        raise ImproperlyConfigured(f"{name} must be a sqlite:/// or postgres:// URL, got {scheme}://…")
    if not config.get("NAME") or config["NAME"] == ":memory:":
        raise ImproperlyConfigured(f"{name} names no database (sqlite:///path/file.sqlite3, postgres://host/dbname)")
    if engine == "django.db.backends.sqlite3":
        # WAL + busy timeout + IMMEDIATE transactions: web, worker and beat share the file.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["ENGINE"] = "bookings_project.sqlite3"  # Django's, with LOWER() folding every letter
    elif engine in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
        config["ENGINE"] = "bookings_project.postgresql"  # Django's, with a pool that recovers at once
        options = {
            # Bounded lock waits: a blocked booking fails fast instead of hanging a worker.
            "options": f"-c lock_timeout={env_int('DB_LOCK_TIMEOUT_MS', 5000, 0)}"
            f" -c statement_timeout={statement_timeout_ms()}",
            "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5, 0),
            # A network that stops passing bytes (no reset) must not hang a request forever:
            # data unacknowledged this long, or an idle connection whose keepalives go
            # unanswered, fails the connection (a clean 503). A slow statement is unaffected.
            "tcp_user_timeout": env_int("DB_TCP_USER_TIMEOUT_MS", 10_000, 0),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        if env_bool("DB_POOL", True):
            pool_timeout = env_int("DB_POOL_TIMEOUT", 10, 1)
            min_size = env_int("DB_POOL_MIN_SIZE", 1, 0)
            options["pool"] = {
                "min_size": min_size,
                "max_size": env_int("DB_POOL_MAX_SIZE", 10, max(1, min_size)),
                "timeout": pool_timeout,
                # psycopg_pool retries a failed connect with a doubling delay (1, 2, 4, 8 … s)
                # until this many seconds have passed, then gives up, and the next request
                # that waits starts afresh. Its default (300 s) lets a pool sleep for up to
                # about as long as the outage lasted after the database is back; as long as
                # a request's wait, the attempts cover the wait of the request that began them.
                "reconnect_timeout": env_int("DB_POOL_RECONNECT_TIMEOUT", pool_timeout, 0),
            }
            config["CONN_MAX_AGE"] = 0
            # After a database restart every idle pooled connection is dead. With health
            # checks the pool checks a connection (an empty round trip) before handing it out
            # and replaces a dead one, instead of failing the request that gets it with a 503;
            # the first dead one makes it test all its idle ones (bookings_project.postgresql).
            config["CONN_HEALTH_CHECKS"] = True
        config["OPTIONS"] = options
    config.setdefault("TEST", {})
    return config
