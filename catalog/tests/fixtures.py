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
