"""Fixtures shared by catalog and reservations tests (imported by both conftest files)."""

import pytest


@pytest.fixture
def organizer(make_user):
    return make_user(roles=["EVENT_ORGANIZER"], username="event_organizer")


@pytest.fixture
def other_organizer(make_user):
    return make_user(roles=["EVENT_ORGANIZER"], username="other_organizer")


@pytest.fixture
def admin(make_user):
    return make_user(roles=["ADMIN"], username="the_admin")


@pytest.fixture
def customer(make_user):
    return make_user(roles=["USER"], username="testuser")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """These tests create many users; PBKDF2 would spend ~0.4 s on each. (The root conftest's
    PASSWORD_HASHERS default arrives after pytest-django has already read the settings.)"""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
