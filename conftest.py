"""Test-wide settings and fixtures. Env defaults are set before Django reads its settings."""

import os

os.environ.setdefault("PASSWORD_HASHERS", "django.contrib.auth.hashers.MD5PasswordHasher")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_cache():
    """Rate-limit counters must not leak between tests."""
    from django.core.cache import cache

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
