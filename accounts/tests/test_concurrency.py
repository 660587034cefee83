"""Races between ADMINs on PostgreSQL with real threads, each on its own connection."""

import pytest

from accounts.models import User
from accounts.services import user_deactivate, user_update
from bookings_project.errors import Forbidden
from bookings_project.testing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("attempt", range(5))
@pytest.mark.parametrize("action", ["demote", "delete"])
def test_two_admins_acting_on_each_other_at_once_never_leave_both_without_admin(make_user, action, attempt):
    """Each request's actor is a snapshot from its start: without the pair lock both changes
    passed their "is the actor an ADMIN?" check, and both accounts lost ADMIN (an audit saw it
    in 78 of 80 runs). Now the second one sees the first's outcome and is refused."""
    a, b = make_user(roles=["ADMIN"]), make_user(roles=["ADMIN"])
    if action == "demote":
        calls = [lambda: user_update(actor=a, user=b, roles=["USER"]), lambda: user_update(actor=b, user=a, roles=["USER"])]
    else:
        calls = [lambda: user_deactivate(actor=a, user=b), lambda: user_deactivate(actor=b, user=a)]

    results = race(calls)

    assert sum(isinstance(r, User) for r in results) == 1, results
    assert sum(isinstance(r, Forbidden) for r in results) == 1, results
    admins = [u for u in User.objects.filter(pk__in=[a.pk, b.pk]) if u.is_active and u.is_admin]
    assert len(admins) == 1


# --- Audit: refresh rotation, registration and role changes at the same moment -----------------

PASSWORD = "Str0ng-Passw0rd!"


def _client():
    from rest_framework.test import APIClient

    return APIClient()


def test_concurrent_refreshes_with_one_refresh_token_exactly_one_succeeds(make_user, settings):
    """Four clients present the same refresh token at once: one 200, three 401; the pair the
    winner got works, and the used token stays refused."""
    settings.RATE_LIMIT_REFRESH = "1000/m"
    from accounts.tokens import token_pair_for_user

    for _ in range(5):
        _, refresh = token_pair_for_user(make_user())

        responses = race([lambda: _client().post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json")] * 4)

        assert sorted(r.status_code for r in responses) == [200, 401, 401, 401], [r.content for r in responses]
        [won] = [r.json() for r in responses if r.status_code == 200]
        me = _client()
        me.credentials(HTTP_AUTHORIZATION=f"Bearer {won['token']}")
        assert me.get("/api/v1/user/me").status_code == 200
        assert _client().post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json").status_code == 401
        assert _client().post("/api/v1/auth/refresh", {"refreshToken": won["refreshToken"]},
                              format="json").status_code == 200


def test_logouts_and_a_refresh_of_one_token_at_once_are_never_a_500(make_user, settings):
    """Two logouts and a refresh race on one token: every logout is a 204 (idempotent), the
    refresh wins (200) or comes too late (401), and the token stays refused afterwards."""
    settings.RATE_LIMIT_REFRESH = "1000/m"
    from accounts.tokens import token_pair_for_user

    for _ in range(5):
        _, refresh = token_pair_for_user(make_user())
        body = {"refreshToken": refresh}

        responses = race([lambda: _client().post("/api/v1/auth/logout", body, format="json")] * 2
                         + [lambda: _client().post("/api/v1/auth/refresh", body, format="json")])

        assert [r.status_code for r in responses[:2]] == [204, 204], [r.content for r in responses]
        assert responses[2].status_code in (200, 401), responses[2].content
        assert _client().post("/api/v1/auth/refresh", body, format="json").status_code == 401


@pytest.mark.parametrize("first, second", [
    (("/api/v1/user", {"username": "Racer{n}", "email": "a{n}@example.com"}),
     ("/api/v1/user", {"username": "racer{n}", "email": "b{n}@example.com"})),
    (("/api/v1/user", {"username": "first{n}", "email": "Racer{n}@Example.com"}),
     ("/api/v1/user", {"username": "second{n}", "email": "racer{n}@example.com"})),
    (("/auth/register", {"email": "Racer{n}@example.com"}), ("/auth/register", {"email": "racer{n}@EXAMPLE.com"})),
    (("/api/v1/user", {"username": "first{n}", "email": "racer{n}@example.com"}),
     ("/auth/register", {"email": "RACER{n}@example.com"})),
    (("/api/v1/user", {"username": "ｒａｃｅｒ{n}", "email": "a{n}@example.com"}),
     ("/api/v1/user", {"username": "Racer{n}", "email": "b{n}@example.com"})),
    (("/api/v1/user", {"username": "first{n}", "email": "racer{n}@ｅｘａｍｐｌｅ.com"}),
     ("/auth/register", {"email": "RACER{n}@example.com"})),
], ids=["username-case", "email-case", "core-email-case", "booking-and-core-api", "username-nfkc", "email-nfkc"])
def test_two_registrations_of_one_name_in_different_case_are_one_201_and_one_409(first, second, settings):
    """Both pass the uniqueness check before either commits; the case-insensitive unique
    indexes refuse the second INSERT, which must be a 409, never a 500 or a second account."""
    from accounts.models import User

    settings.RATE_LIMIT_REGISTER = "1000/m"

    def register(path, fields, n):
        body = {key: value.format(n=n) for key, value in fields.items()} | {"password": PASSWORD}
        return _client().post(path, body, format="json")

    for n in range(5):
        responses = race([lambda: register(*first, n), lambda: register(*second, n)])

        assert sorted(r.status_code for r in responses) == [201, 409], [r.content for r in responses]
        assert User.objects.filter(email__iexact=f"racer{n}@example.com").count() + User.objects.filter(
            username__iexact=f"racer{n}").count() == 1


def test_role_grants_and_revokes_on_one_user_at_once_all_take_effect(make_user):
    """Four ADMIN actions on one user at once, each a change of the roles held under the lock:
    none undoes another, and the IT operators group follows the final roles (recreated once if
    it was removed by hand). (USER stays: revoking it too would make the outcome depend on the
    order — an account left with no role holds USER, accounts.models.normalize_roles.)"""
    from django.contrib.auth.models import Group

    from accounts.services import IT_OPERATORS_GROUP, user_grant_role, user_revoke_role

    admin = make_user(roles=["ADMIN"])
    for round_ in range(4):
        Group.objects.filter(name=IT_OPERATORS_GROUP).delete()
        user = make_user(roles=["USER", "EVENT_ORGANIZER"])

        results = race([lambda: user_grant_role(actor=admin, user=user, role="IT_OPERATOR"),
                        lambda: user_grant_role(actor=admin, user=user, role="ADMIN"),
                        lambda: user_revoke_role(actor=admin, user=user, role="EVENT_ORGANIZER"),
                        lambda: user_grant_role(actor=admin, user=user, role="IT_OPERATOR")])  # twice at once

        assert all(isinstance(r, User) for r in results), results
        user.refresh_from_db()
        assert user.roles == ["ADMIN", "IT_OPERATOR", "USER"] and user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == [IT_OPERATORS_GROUP]
        assert Group.objects.filter(name=IT_OPERATORS_GROUP).count() == 1


def test_a_grant_racing_a_revoke_of_one_role_leaves_roles_and_group_in_agreement(make_user):
    from accounts.services import IT_OPERATORS_GROUP, user_grant_role, user_revoke_role

    admin = make_user(roles=["ADMIN"])
    for _ in range(6):
        user = make_user(roles=["USER"])

        results = race([lambda: user_grant_role(actor=admin, user=user, role="IT_OPERATOR"),
                        lambda: user_revoke_role(actor=admin, user=user, role="IT_OPERATOR")])

        assert all(isinstance(r, User) for r in results), results
        user.refresh_from_db()
        operator = "IT_OPERATOR" in user.roles
        assert user.is_staff == operator
        assert user.groups.filter(name=IT_OPERATORS_GROUP).exists() == operator


def test_a_refresh_racing_a_password_change_leaves_no_working_token_from_before(make_user, settings):
    """The owner changes the password (every token issued before must die) while a refresh
    token from before is rotated. Whatever the order, the old refresh token is refused
    afterwards, and a pair the refresh may have got carries the old password's fingerprint, so
    neither of its tokens works either."""
    from accounts.tests.factories import DEFAULT_PASSWORD
    from accounts.tokens import token_pair_for_user

    settings.RATE_LIMIT_REFRESH = "1000/m"
    for n in range(6):
        user = make_user()
        _, refresh = token_pair_for_user(user)

        refreshed, changed = race([
            lambda: _client().post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json"),
            lambda: user_update(actor=user, user=user, password=f"N3w-{n}-Passw0rd!", current_password=DEFAULT_PASSWORD)])

        assert isinstance(changed, User), changed
        assert refreshed.status_code in (200, 401), refreshed.content
        assert _client().post("/api/v1/auth/refresh", {"refreshToken": refresh}, format="json").status_code == 401
        if refreshed.status_code == 200:
            pair = refreshed.json()
            me = _client()
            me.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['token']}")
            assert me.get("/api/v1/user/me").status_code == 401
            assert _client().post("/api/v1/auth/refresh", {"refreshToken": pair["refreshToken"]},
                                  format="json").status_code == 401


def test_an_admin_action_whose_lock_wait_times_out_on_one_user_keeps_what_it_did(client, make_user):
    """Deactivating two users while another transaction holds the second's row (another admin's
    deactivation cancelling many bookings): the first is deactivated with its history, the
    second refused by name — the lock timeout reached the page as "The selection was not valid;
    nothing was changed" after the first user's customers had been emailed."""
    import threading

    from django.contrib.admin.models import LogEntry
    from django.contrib.messages import get_messages
    from django.db import connection, transaction

    boss = make_user(roles=["ADMIN"])
    first, second = make_user(), make_user()
    locked, release = threading.Event(), threading.Event()

    def hold_second_row():
        try:
            with transaction.atomic():
                list(User.objects.select_for_update().filter(pk=second.pk))
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_second_row)
    holder.start()
    client.force_login(boss)
    try:
        assert locked.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        response = client.post("/admin/accounts/user/", {"action": "deactivate", "post": "yes",
                                                         "_selected_action": [first.pk, second.pk]}, follow=True)
    finally:
        release.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"1 user(s) not changed: the database did not answer in time or failed; run the action again ({second.username})",
        "1 user(s) deactivated."]
    assert [u.is_active for u in User.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")] == [False, True]
    assert list(LogEntry.objects.values_list("object_id", flat=True)) == [str(first.pk)]
