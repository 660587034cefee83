"""Settings for the booking platform, driven only by environment variables (12-factor).

Every name in the contract's env-var table is read here, except those only `make run` needs
(`PORT`, `HOST`, `DEMO_DATA`, `DJANGO_SUPERUSER_*`: ops/management/commands/runstack.py);
nothing else switches behaviour between development and production.
"""

from datetime import timedelta
from pathlib import Path
import os

from django.core.exceptions import ImproperlyConfigured

from bookings_project.env import (database_from_url, env_bool, env_crontab, env_int, env_list, env_log_level, env_rate,
                                  env_origins, env_redis_url, env_str, env_time_zone, statement_timeout_ms)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
try:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"VAR_DIR {str(VAR_DIR)!r} cannot be created: {exc.strerror}") from exc


# --- Core -----------------------------------------------------------------------------------

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production-0123456789"
DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is unset (or the development key): set SECRET_KEY to a secret value."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "bookings_project.errors.csrf_failure"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = "en-us"
# Admin dates with seconds and the zone (bookings_project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["bookings_project.formats"]

# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, 0)

INSTALLED_APPS = [
    "bookings_project.admin.BookingsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "accounts",
    "catalog",
    "reservations",
    "reporting",
    "ops",
]

MIDDLEWARE = [
    # First, so every request has an id, a preflight the next one answers itself included; it
    # makes no response of its own.
    "ops.middleware.RequestIDMiddleware",
    # Nothing is cached unless a response says how (tokens and personal data above all).
    "bookings_project.http.no_store_by_default",
    # Answers CORS preflights itself, and adds CORS headers to every API response, errors made
    # by the middleware below included (a browser app must read a 401, a 411 or a 429 too).
    "corsheaders.middleware.CorsMiddleware",
    "bookings_project.content.length_required",
    "django.middleware.security.SecurityMiddleware",
    # /healthz and /readyz, whatever the Host header (probes name an IP); the rest is host-checked.
    "ops.health.probes_any_host",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A method the route never takes: 405 before DRF authenticates (else a 401/403 for some callers).
    "bookings_project.http.MethodBeforeAuthMiddleware",
]

ROOT_URLCONF = "bookings_project.urls"
WSGI_APPLICATION = "bookings_project.wsgi.application"
ASGI_APPLICATION = "bookings_project.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "libraries": {"bookings_admin": "bookings_project.admin_tags"},
        },
    },
]

# --- Databases ------------------------------------------------------------------------------

# (empty, as compose passes an unset variable, is the default, as for every other variable)
DATABASE_URL = env_str("DATABASE_URL", "") or f"sqlite:///{VAR_DIR / 'bookings.sqlite3'}"
DOCUMENTS_DATABASE_URL = env_str("DOCUMENTS_DATABASE_URL", "") or f"sqlite:///{VAR_DIR / 'documents.sqlite3'}"
DATABASES = {
    "default": database_from_url(DATABASE_URL),
    "documents": database_from_url(DOCUMENTS_DATABASE_URL, "DOCUMENTS_DATABASE_URL"),
}
DATABASE_ROUTERS = ["ops.routers.DocumentsRouter"]
# PostgreSQL: a connection still waiting for its server this long after a statement, COMMIT or
# pool check began is dropped (bookings_project.postgresql): a server that hangs with its
# connections open never enforces its statement_timeout itself. 0 (statement_timeout off): no bound.
_statement_timeout_ms = statement_timeout_ms()
DB_HUNG_SERVER_SECONDS = _statement_timeout_ms / 1000 + 5 if _statement_timeout_ms else 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.UsernameOrEmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.validators.RepetitivePasswordValidator"},
]
PASSWORD_HASHERS = env_list(
    "PASSWORD_HASHERS",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher,"
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
)

JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", "")
if not JWT_SIGNING_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DEBUG is off: set JWT_SIGNING_KEY (at least 32 bytes).")
    JWT_SIGNING_KEY = "dev-jwt-signing-key-not-for-production-0123456789abcdef"
if len(JWT_SIGNING_KEY.encode()) < 32:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must be at least 32 bytes long.")

# A static bearer token for a metrics scraper (GET /metrics; ADMIN and IT_OPERATOR tokens work
# too). Unset: no scraper token. As long as a signing key: it is compared, not looked up. Without
# the line break a file's token ends with (`openssl rand -hex 32 > f`; Prometheus trims its
# credentials_file): the header's token is compared trimmed.
METRICS_TOKEN = env_str("METRICS_TOKEN", "").strip()
if METRICS_TOKEN and len(METRICS_TOKEN.encode()) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 bytes long (or unset).")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_TTL", 900, 1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_REFRESH_TTL", 604800, 1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "LEEWAY": 0,
}

# --- REST framework and OpenAPI ------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["bookings_project.content.ExactJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["bookings_project.content.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "bookings_project.content.JSONFallbackNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "bookings_project.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "bookings_project.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": False,
    "DATETIME_FORMAT": "iso-8601",
}
# No browsable API even in DEBUG: every answer, errors included, is JSON (contract §8); the
# interactive docs are Swagger UI at /api/docs/.

SPECTACULAR_SETTINGS = {
    "TITLE": "Booking Platform API",
    "DESCRIPTION": "Booking API (`/api/v1/…`) and core API (`/auth`, `/logs`, `/jobs`, …).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from validator.swagger.io: the docs make no request outside this server.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "ops.models.JobStatus",
        "JobTypeEnum": "ops.models.JobType",
        "SeverityEnum": "ops.models.Severity",
        "BookingStatusEnum": "reservations.models.BookingStatus",
        "NotificationTypeEnum": "ops.emails.EMAIL_TEMPLATES",
    },
}

# Largest accepted request body; bigger bodies get a 400/413 JSON error.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1_048_576, 1)

# --- Cache and rate limiting ----------------------------------------------------------------

REDIS_URL = env_redis_url("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "bookings_project.cache.FailoverRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "bookings"),
        }
    }
else:
    # Embedded mode serves from one web process (runstack: `runserver` when DEBUG is on, else
    # gunicorn with WEB_CONCURRENCY workers, default 1), so this in-process cache is shared by
    # every request.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# After a Redis call fails, a process leaves Redis alone this long (bookings_project.cache): a
# hung Redis costs a request at most one socket timeout, not one per call.
REDIS_RETRY_SECONDS = env_int("REDIS_RETRY_SECONDS", 5, 0)
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
if not REDIS_URL:
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

RATELIMIT_ENABLE = env_bool("RATE_LIMIT_ENABLED", True)
RATELIMIT_USE_CACHE = "default"
RATE_LIMIT_LOGIN = env_rate("RATE_LIMIT_LOGIN", "10/m")
RATE_LIMIT_REGISTER = env_rate("RATE_LIMIT_REGISTER", "5/m")
RATE_LIMIT_REFRESH = env_rate("RATE_LIMIT_REFRESH", RATE_LIMIT_LOGIN)
# Per account: entries one signed-in user may add through POST /logs.
RATE_LIMIT_LOGS = env_rate("RATE_LIMIT_LOGS", "60/m")
# Per account and exported account: GET /api/v1/user/{id}/export reads a whole history.
RATE_LIMIT_EXPORT = env_rate("RATE_LIMIT_EXPORT", "10/h")

# --- Celery, outbox, email ------------------------------------------------------------------

BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Visibility timeout well above the longest task (hard limit 600 s): an unacked task of a
    # dead worker is redelivered after it, never while it may still be running.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, 1),
        "socket_connect_timeout": 1,
        "socket_timeout": 5,
    }
else:
    # (a host, which the filesystem transport ignores: without one kombu warns in every process)
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Publishing a nudge must not stall a request for long when the broker is down.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 1, 1)


OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 5, 1)
CELERY_TIMEZONE = TIME_ZONE  # the beat's crontab schedules (RECONCILE_CRON, RETENTION_CRON) read in it
CELERY_BEAT_SCHEDULE = {
    # The safety net: delivers whatever a lost nudge or a dead worker left behind. A sweep not
    # started within its own period is dropped: while the workers are down, the next one covers it
    # (instead of a pile of ~17,000 sweeps a day waiting for them).
    "outbox-sweep": {"task": "ops.outbox_dispatch_task", "schedule": float(OUTBOX_SWEEP_SECONDS),
                     "options": {"expires": float(OUTBOX_SWEEP_SECONDS)}},
    # Full reconciliation of the document DB, nightly by default (cron syntax, in TIME_ZONE); it
    # only creates the jobs (which the outbox runs), so a late start within the hour is harmless.
    "reconcile-all": {"task": "ops.reconcile_all_task", "schedule": env_crontab("RECONCILE_CRON", "0 3 * * *"),
                      "options": {"expires": 3600.0}},
    # Retention of system logs and SENT outbox events (ops/retention.py), nightly by default.
    "prune-history": {"task": "ops.history_prune_task", "schedule": env_crontab("RETENTION_CRON", "30 3 * * *"),
                      "options": {"expires": 3600.0}},
    # Reminder emails of bookings whose item starts within BOOKING_REMINDER_HOURS (a missed sweep
    # is covered by the next: what is due stays due until the item starts).
    "booking-reminders": {"task": "reservations.booking_reminders_task", "schedule": 300.0,
                          "options": {"expires": 300.0}},
}
# Days kept: system log entries (0: forever — an audit trail), SENT outbox events (0: forever).
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 0, 0, 36_500)
OUTBOX_SENT_RETENTION_DAYS = env_int("OUTBOX_SENT_RETENTION_DAYS", 30, 0, 36_500)

# Seconds a rendered item list may live in Redis (0 disables the cache); see catalog/cache.py.
CATALOG_CACHE_TTL = env_int("CATALOG_CACHE_TTL", 300, 0)

# Upcoming active bookings one account may hold at once (business-flow protection).
MAX_ACTIVE_BOOKINGS_PER_USER = env_int("MAX_ACTIVE_BOOKINGS_PER_USER", 25, 1)
# Hours before its item starts that a confirmed booking's reminder email goes out (0: none).
BOOKING_REMINDER_HOURS = env_int("BOOKING_REMINDER_HOURS", 24, 0, 720)
MAX_UPCOMING_ITEMS_PER_ORGANIZER = env_int("MAX_UPCOMING_ITEMS_PER_ORGANIZER", 500, 1)

OUTBOX_BATCH_SIZE = env_int("OUTBOX_BATCH_SIZE", 10, 1, 1000)
OUTBOX_MAX_RETRIES = env_int("OUTBOX_MAX_RETRIES", 5, 1)
OUTBOX_RETRY_BASE_SECONDS = env_int("OUTBOX_RETRY_BASE_SECONDS", 5, 0)
OUTBOX_LEASE_SECONDS = env_int("OUTBOX_LEASE_SECONDS", 600, 1)
# How long one dispatcher task drains before leaving the rest to the next (its last full batch
# nudged one): a worker asked to stop finishes within about this long plus one batch.
OUTBOX_DISPATCH_SECONDS = env_int("OUTBOX_DISPATCH_SECONDS", 10, 0)
JOB_STALE_AFTER_SECONDS = env_int("JOB_STALE_AFTER_SECONDS", 1800, 1)
# A long job runs in slices of about this long on the workers (well inside the Celery time
# limit, the outbox lease and JOB_STALE_AFTER_SECONDS), and `PUT /jobs/{id}/execute` runs at
# most this long in the request before answering `running` (inside gunicorn's 30 s timeout).
JOB_SLICE_SECONDS = env_int("JOB_SLICE_SECONDS", 120, 0)
JOB_EXECUTE_SECONDS = env_int("JOB_EXECUTE_SECONDS", 20, 0)

EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25, 1, 65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, 1)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Bookings <no-reply@bookings.local>")
# Where users reach this server: links in emails (a password reset) are built on it, never on a
# request's Host header (which a caller chooses: a reset link pointing at their own server).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "") or f"http://{env_str('HOST', '') or '127.0.0.1'}:{env_str('PORT', '') or '8000'}"
if not PUBLIC_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"PUBLIC_BASE_URL must start with http:// or https://, got {PUBLIC_BASE_URL!r}")
# Seconds a password reset link stays valid (it also stops working once used).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TTL", 3600, 60, 7 * 86400)

# --- Static files, security -----------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a TLS-terminating proxy (docs/OPERATIONS.md): trust its X-Forwarded-Proto, so links and
# the admin's CSRF origin check see https; then send HSTS and redirect plain HTTP. All off by
# default (`make run` and the compose file serve plain HTTP on localhost).
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain HTTP to the container

# Browser apps on other origins (CORS): the API answers the origins listed in CORS_ALLOWED_ORIGINS
# (none by default; `*` any). Credentials are bearer tokens a script sends, never cookies, so no
# origin gets credentialed access, and the admin and the reset pages (session cookies) are no
# part of it.
_cors_origins = env_origins("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = _cors_origins == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else _cors_origins
CORS_ALLOW_CREDENTIALS = False
# (each core API resource with its subpaths: a mistyped /logs/1 is a 404 the app can read)
CORS_URLS_REGEX = r"^/(api/|auth/|(logs|notifications|jobs|reconciliation|metrics)(/|$))"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "idempotency-key", "if-none-match", "x-request-id")
CORS_EXPOSE_HEADERS = ("X-Request-ID", "X-Total-Count", "Link", "Location", "ETag", "Retry-After",
                       "Idempotent-Replayed", "Content-Disposition")
CORS_PREFLIGHT_MAX_AGE = 86400

# --- Logging: every line carries the request id ----------------------------------------------

LOG_LEVEL = env_log_level("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ops.middleware.RequestIDLogFilter"}},
    "formatters": {
        # (asctime in UTC with Z: bookings_project.logformat)
        "plain": {"()": "bookings_project.logformat.UtcFormatter",
                  "format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}",
                          "style": "{"},
    },
    # Every handler carries the filter (it also writes a password reset link's token as <token>).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        },
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's defaults (django.utils.log.DEFAULT_LOGGING) would keep their handlers, which lack
        # the filter: its console handler writes django.* records (a failed reset link's path)
        # again while DEBUG is on, and runserver — `make run`'s web server while DEBUG is on —
        # writes each request line through its own.
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "django.request": {"level": "ERROR"},
    },
}
