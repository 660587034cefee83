"""Test-wide settings and fixtures."""

import os

import pytest

from bookings_project.testing import REVOKED_CALLERS, LoopbackSMTP


def pytest_configure(config):
    """Test-only settings. pytest-django has already imported the settings module by now (so
    environment variables set here would be too late); adjust the settings object instead."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if not settings.REDIS_URL:
        settings.CELERY_BROKER_URL = "memory://"  # nudges go nowhere; tests dispatch explicitly
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    # The item-list cache is invalidated on commit; most tests never commit (they roll back), so
    # it is off unless a test turns it on (catalog/tests/test_list_cache.py, real commits).
    settings.CATALOG_CACHE_TTL = 0


@pytest.fixture(autouse=True)
def _clean_cache():
    """Rate-limit counters must not leak between tests, nor a Redis (or a documents database) put to rest by one,
    nor a probe's dependency check still running."""
    from django.core.cache import cache

    import bookings_project.cache
    import catalog.cache
    import ops.handlers
    import ops.health

    for rest in (bookings_project.cache.REDIS_REST, ops.handlers.DOCUMENTS_REST, ops.handlers.MAIL_REST):
        rest.end()
    catalog.cache.list_cache_outage.reset()
    catalog.cache.bump_outage.reset()
    ops.health._RUNNING.clear()  # a dependency check one test left hanging answers no later probe
    if hasattr(cache, "_fallback"):  # (Redis mode) the outage fallback's counters and its warning state
        cache._fallback.clear()
        cache.outage.reset()

    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
    yield


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def make_user(db):
    """make_user(roles=["ADMIN"], **fields) -> saved user with the factory's password."""
    from accounts.tests.factories import UserFactory

    def make(roles=("USER",), **fields):
        return UserFactory(roles=list(roles), **fields)

    return make


@pytest.fixture
def organizer(make_user):
    return make_user(roles=["EVENT_ORGANIZER"], username="event_organizer")


@pytest.fixture
def other_organizer(make_user):
    return make_user(roles=["EVENT_ORGANIZER"], username="other_organizer")


@pytest.fixture
def admin(make_user):
    """An ADMIN acting through the API and the services (the admin site's is `admin_user`)."""
    return make_user(roles=["ADMIN"], username="the_admin")


@pytest.fixture
def customer(make_user):
    return make_user(roles=["USER"], username="testuser")


@pytest.fixture
def admin_user(make_user):
    """The ADMIN who uses the admin site (replaces pytest-django's superuser: access here comes
    from roles)."""
    return make_user(roles=["ADMIN"], username="boss")


@pytest.fixture
def admin_client(client, admin_user):
    """Django's test client signed in to the admin site as `admin_user` (also `.admin_user`)."""
    client.force_login(admin_user)
    client.admin_user = admin_user
    return client


@pytest.fixture
def token_for():
    """token_for(user) -> a valid access token (Bearer) for the user."""
    from accounts.tokens import token_pair_for_user

    def issue(user):
        return token_pair_for_user(user)[0]

    return issue


@pytest.fixture
def client_for(token_for):
    """client_for(user) -> an APIClient authenticated as the user (None: anonymous)."""
    from rest_framework.test import APIClient

    def build(user=None):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
        return client

    return build


@pytest.fixture
def revoked_client_for(make_user, client_for):
    """revoked_client_for(how, user=None) -> an APIClient holding an access token issued to the
    user (default: a new ADMIN, so a revocation that did not hold shows as a success) before
    `how` happened to the account:
    - "deactivated": is_active set to False and nothing else, so the token's password fingerprint
      still matches and only the active check stands between it and the API;
    - "stale_password": the password changed (through the service, as PUT /user/{id} does)."""
    from accounts.models import User
    from accounts.services import user_update
    from accounts.tests.factories import DEFAULT_PASSWORD

    def build(how, user=None):
        user = user or make_user(roles=["ADMIN"])
        client = client_for(user)
        if how == "deactivated":
            User.objects.filter(pk=user.pk).update(is_active=False)
        elif how == "stale_password":
            user_update(actor=user, user=user, password="An0ther-Str0ng-One!", current_password=DEFAULT_PASSWORD)
        else:
            raise ValueError(f"unknown revocation {how!r}; one of {REVOKED_CALLERS}")
        return client

    return build


@pytest.fixture
def caller_client(make_user, client_for, revoked_client_for):
    """caller_client(caller) -> an APIClient for a role-matrix row: None (anonymous), a list of
    roles (a new user holding them), or one of REVOKED_CALLERS (an ADMIN's token, revoked since)."""

    def build(caller):
        if isinstance(caller, str) and caller in REVOKED_CALLERS:
            return revoked_client_for(caller)
        return client_for(make_user(roles=caller) if caller else None)

    return build


@pytest.fixture
def smtp_server(settings):
    """A running loopback SMTP server; Django's email backend points at it."""
    server = LoopbackSMTP()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    """Chromium for browser tests (bookings_project.testing.CHROMIUM), one per test module."""
    from bookings_project.testing import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def expect():
    return pytest.importorskip("playwright.sync_api").expect


def pytest_collection_modifyitems(config, items):
    """`postgres`/`redis` tests run only where DATABASE_URL/REDIS_URL point at those services."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    skip_pg = pytest.mark.skip(reason="needs DATABASE_URL pointing at PostgreSQL")
    skip_redis = pytest.mark.skip(reason="needs REDIS_URL pointing at Redis")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)
