"""Production mode refuses to start with development secrets (contract §1)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bookings_project import settings as project_settings

ROOT = Path(__file__).resolve().parents[2]
REAL_SECRET = "prod-secret-" + "k" * 40
REAL_JWT_KEY = "prod-jwt-signing-key-" + "j" * 32


def import_settings(tmp_path, show: str = "s.DEBUG", **env) -> subprocess.CompletedProcess:
    """Import the settings module in a fresh interpreter with a production-like environment and
    print `show` (an expression of the module `s`)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in {"SECRET_KEY", "JWT_SIGNING_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    clean.update(VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, "-c", f"import bookings_project.settings as s; print({show})"],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_production_refuses_the_dev_secret_key(tmp_path):
    result = import_settings(tmp_path, DEBUG="0", JWT_SIGNING_KEY=REAL_JWT_KEY)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


def test_production_refuses_an_explicit_dev_secret_key(tmp_path):
    result = import_settings(tmp_path, DEBUG="0", SECRET_KEY=project_settings.DEV_SECRET_KEY,
                             JWT_SIGNING_KEY=REAL_JWT_KEY)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_production_requires_a_jwt_signing_key(tmp_path):
    result = import_settings(tmp_path, DEBUG="0", SECRET_KEY=REAL_SECRET)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "JWT_SIGNING_KEY" in result.stderr


def test_production_starts_with_real_keys(tmp_path):
    result = import_settings(tmp_path, DEBUG="0", SECRET_KEY=REAL_SECRET, JWT_SIGNING_KEY=REAL_JWT_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_default_hosts_are_the_loopback_names_only(tmp_path):
    """Django's test client Host (`testserver`) is added by the test runner itself; a production
    default that accepted it would answer any request that names it."""
    result = import_settings(tmp_path, show="s.ALLOWED_HOSTS", DEBUG="0", SECRET_KEY=REAL_SECRET,
                             JWT_SIGNING_KEY=REAL_JWT_KEY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['localhost', '127.0.0.1', '[::1]']"


@pytest.mark.parametrize("value", ["", " ", ","])
def test_an_empty_allowed_hosts_is_the_default(tmp_path, value):
    """`ALLOWED_HOSTS=` (an env file's empty line, compose passing an unset variable) is the
    default, as an empty DATABASE_URL, HOST or PORT is: read as no host at all, production
    answered every request but the probes with a 400 (DisallowedHost)."""
    result = import_settings(tmp_path, show="s.ALLOWED_HOSTS", DEBUG="0", SECRET_KEY=REAL_SECRET,
                             JWT_SIGNING_KEY=REAL_JWT_KEY, ALLOWED_HOSTS=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['localhost', '127.0.0.1', '[::1]']"


@pytest.mark.parametrize("debug", ["0", "1"])
def test_short_jwt_signing_key_is_refused(tmp_path, debug):
    result = import_settings(tmp_path, DEBUG=debug, SECRET_KEY=REAL_SECRET, JWT_SIGNING_KEY="x" * 31)
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY must be at least 32 bytes" in result.stderr


@pytest.mark.parametrize("name, value", [
    ("RATE_LIMIT_LOGIN", "abc"),       # django-ratelimit would fail on every login: a 500 each
    ("RATE_LIMIT_REGISTER", "10/M"),   # django-ratelimit would read it as 10 per second
    ("RATE_LIMIT_REFRESH", "5/0m"),
    ("VAR_DIR", "/proc/no-such-dir/var"),
    ("DATABASE_URL", "garbage"),
    ("DOCUMENTS_DATABASE_URL", "mysqlx://db/x"),
    ("DATABASE_URL", "postgres://"),                 # was Django's "settings.DATABASES is improperly configured"
    ("DOCUMENTS_DATABASE_URL", "mysql://db/x"),      # was "Error loading MySQLdb module", naming no variable
    ("DATABASE_URL", "sqlite://"),                   # an in-memory DB: each process its own, empty one
    ("OUTBOX_MAX_RETRIES", "five"),
    ("RECONCILE_CRON", "every night"),
    ("RETENTION_CRON", "99 3 * * *"),
    ("TIME_ZONE", ""),               # every request was a 503 "Database temporarily unavailable"
    ("TIME_ZONE", "Europe/Berln"),
    ("TIME_ZONE", "+02:00"),         # an offset is not a zone (no DST rules)
    ("TIME_ZONE", "../etc/passwd"),
    ("TIME_ZONE", "Mars/Base"),
    ("OUTBOX_BATCH_SIZE", "abc"),
    ("OUTBOX_BATCH_SIZE", "0"),        # the dispatcher claimed nothing, ever: no email went out
    ("OUTBOX_MAX_RETRIES", "-1"),
    ("JWT_ACCESS_TTL", "0"),           # every token expired as it was issued
    ("JWT_REFRESH_TTL", "-5"),
    ("EMAIL_PORT", "70000"),
    ("OUTBOX_SWEEP_SECONDS", "0"),     # beat would send a sweep as fast as it could
    ("MAX_REQUEST_BODY_BYTES", "-1"),
    ("RATE_LIMIT_ENABLED", "maybe"),   # was read as off: every rate limit gone on a typo
    ("DEBUG", "treu"),                 # was read as production
    ("LOG_LEVEL", "LOUD"),             # was a traceback from logging's configuration
    ("REDIS_URL", "localhost:6379"),   # failed only on the first request needing the cache
    ("METRICS_TOKEN", "scrape-me"),    # a guessable scraper token
    ("BOOKING_REMINDER_HOURS", "-1"),
    ("CORS_ALLOWED_ORIGINS", "app.example.com"),              # no scheme: no browser sends that
    ("CORS_ALLOWED_ORIGINS", "https://app.example.com/"),     # an origin has no path
    ("CORS_ALLOWED_ORIGINS", "https://app.example.com,*"),    # * stands alone
    ("CORS_ALLOWED_ORIGINS", "https://app.example.com:99999"),
    ("CORS_ALLOWED_ORIGINS", "http://[::1:5173"),             # was urlsplit's ValueError traceback
    # Accepted, but never what a browser's Origin says (lower case, no default port, IDNA): the
    # origin was silently never answered.
    ("CORS_ALLOWED_ORIGINS", "https://App.Example.com"),
    ("CORS_ALLOWED_ORIGINS", "https://app.example.com:443"),
    ("CORS_ALLOWED_ORIGINS", "https://app.example.com:"),
    ("CORS_ALLOWED_ORIGINS", "http://localhost:05173"),
    ("CORS_ALLOWED_ORIGINS", "https://bücher.example"),
    ("CORS_ALLOWED_ORIGINS", "http://[::1]x"),
    ("CORS_ALLOWED_ORIGINS", "http://[0:0:0:0:0:0:0:1]:5173"),
    ("METRICS_TOKEN", "s" * 31 + "\n"),  # as short, but for a line break
])
def test_a_configuration_mistake_stops_every_command_with_one_line_naming_it(tmp_path, name, value):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"VAR_DIR": str(tmp_path), name: value})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Configuration error: {name} ") and "Traceback" not in result.stderr


@pytest.mark.parametrize("rate", ["10/m", "100/h", "5/10s", "1000/d", "0/m", "10/minute", "100/hour", "3/2days"])
def test_rate_limits_take_django_ratelimits_syntax(tmp_path, rate):
    result = import_settings(tmp_path, show="s.RATE_LIMIT_LOGIN", RATE_LIMIT_LOGIN=rate)
    assert result.returncode == 0 and result.stdout.strip() == rate, result.stderr


def test_the_metrics_token_from_a_file_is_read_without_its_line_break(tmp_path):
    """(It was kept: the scraper's token, compared trimmed, never matched — every scrape a 401.)"""
    result = import_settings(tmp_path, show="repr(s.METRICS_TOKEN)", METRICS_TOKEN="f00d" * 16 + "\n")
    assert result.returncode == 0 and result.stdout.strip() == repr("f00d" * 16), result.stderr


def test_an_empty_database_url_is_the_default_as_an_empty_number_is(tmp_path):
    """(It was "UnknownSchemeError Scheme '://' is unknown …", naming every scheme dj-database-url knows.)"""
    result = import_settings(tmp_path, show="s.DATABASES['default']['NAME']", DATABASE_URL="", DOCUMENTS_DATABASE_URL="")
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "bookings.sqlite3"), result.stderr


def test_development_defaults_import(tmp_path):
    result = import_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.django_db
def test_behind_a_tls_proxy_links_are_https_and_hsts_is_sent(client, settings):
    """TRUST_X_FORWARDED_PROTO / SECURE_HSTS_SECONDS / SECURE_SSL_REDIRECT (env, off by default)."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_SSL_REDIRECT = True
    https = client.get("/api/v1/items?page=1&pageSize=1", HTTP_X_FORWARDED_PROTO="https")
    assert https.status_code == 200 and https["Strict-Transport-Security"] == "max-age=31536000"
    assert https["Link"].startswith("<https://")
    assert client.get("/api/v1/items").status_code == 301  # plain HTTP is redirected
    assert client.get("/healthz").status_code == 200  # probes are exempt


def test_tls_settings_come_from_the_environment(tmp_path):
    result = import_settings(tmp_path, show="s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT",
                             TRUST_X_FORWARDED_PROTO="1", SECURE_HSTS_SECONDS="60", SECURE_SSL_REDIRECT="1")
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') 60 True", result.stderr


def test_postgresql_connections_bound_every_wait_including_a_stalled_network():
    from bookings_project.env import database_from_url

    options = database_from_url("postgres://u@db.example:5432/bookings")["OPTIONS"]
    assert "lock_timeout=5000" in options["options"] and "statement_timeout=30000" in options["options"]
    assert options["connect_timeout"] == 5 and options["tcp_user_timeout"] == 10_000
    assert (options["keepalives"], options["keepalives_idle"], options["keepalives_count"]) == (1, 30, 3)


def test_the_beat_reads_its_crontabs_in_the_configured_time_zone():
    """Celery takes its time zone from the settings (one source), not from its own reading of
    the environment: the nightly reconciliation runs at night where the operators are."""
    from django.conf import settings

    from bookings_project.celery import app

    assert app.conf.timezone == settings.TIME_ZONE == settings.CELERY_TIMEZONE


@pytest.mark.parametrize("value, expected", [("0", False), ("off", False), ("False", False), ("no", False),
                                             ("1", True), ("on", True), ("TRUE", True), (" yes ", True),
                                             ("", True)])  # empty: the default (compose passes "")
def test_booleans_take_the_usual_spellings(tmp_path, value, expected):
    result = import_settings(tmp_path, show="s.RATELIMIT_ENABLE", RATE_LIMIT_ENABLED=value)
    assert result.returncode == 0 and result.stdout.strip() == str(expected), result.stderr


def test_numbers_are_checked_against_their_range_and_a_log_level_takes_any_case(tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from bookings_project.env import env_int

    result = import_settings(tmp_path, show="s.OUTBOX_BATCH_SIZE, s.SIMPLE_JWT['ACCESS_TOKEN_LIFETIME'].seconds, "
                                  "s.EMAIL_PORT, s.LOG_LEVEL",
                             OUTBOX_BATCH_SIZE="1000", JWT_ACCESS_TTL="1", EMAIL_PORT="65535", LOG_LEVEL="debug")
    assert result.stdout.strip() == "1000 1 65535 DEBUG", result.stderr
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOME_COUNT", "1001")
        with pytest.raises(ImproperlyConfigured, match=r"^SOME_COUNT must be from 1 to 1000, got 1001$"):
            env_int("SOME_COUNT", 10, 1, 1000)
        env.setenv("SOME_COUNT", "-1")
        with pytest.raises(ImproperlyConfigured, match=r"^SOME_COUNT must be at least 0, got -1$"):
            env_int("SOME_COUNT", 10, 0)
