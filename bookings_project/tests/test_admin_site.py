"""Site-wide admin behaviour: pages the site does not serve (groups, token blacklist), the
header's "Change password" through accounts.services, dates with seconds and zone, and the
403 page's message."""

from datetime import datetime, timezone as dt_timezone

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.exceptions import InvalidToken
from accounts.services import IT_OPERATORS_GROUP, user_grant_role
from accounts.tests.factories import DEFAULT_PASSWORD
from accounts.tokens import token_pair_for_user, token_pair_rotate
from bookings_project.errors import NotFound, ValidationFailed
from ops.models import Severity, SystemLog

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "An0ther-Str0ng-One!"


@pytest.mark.parametrize("model", [Group, BlacklistedToken, OutstandingToken])
def test_groups_and_the_token_blacklist_are_not_on_the_site(model):
    assert not admin.site.is_registered(model)


def test_a_used_refresh_token_cannot_be_revived_through_the_admin(admin_client, make_user):
    user = make_user()
    _, refresh = token_pair_for_user(user)
    token_pair_rotate(refresh_token=refresh)
    blacklisted = BlacklistedToken.objects.get()

    for url in ("/admin/token_blacklist/blacklistedtoken/", f"/admin/token_blacklist/blacklistedtoken/"
                f"{blacklisted.pk}/delete/", "/admin/token_blacklist/outstandingtoken/add/"):
        assert admin_client.get(url).status_code == 404, url
    admin_client.post(f"/admin/token_blacklist/blacklistedtoken/{blacklisted.pk}/delete/", {"post": "yes"})

    assert BlacklistedToken.objects.filter(pk=blacklisted.pk).exists()
    with pytest.raises(InvalidToken):
        token_pair_rotate(refresh_token=refresh)


def test_the_it_operators_group_cannot_be_edited_or_deleted(admin_client):
    group = Group.objects.get(name=IT_OPERATORS_GROUP)
    assert admin_client.get("/admin/auth/group/").status_code == 404
    admin_client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert Group.objects.filter(pk=group.pk).exists()
    assert 'href="/admin/auth/group/"' not in admin_client.get("/admin/").content.decode()


def change_password(client, old=DEFAULT_PASSWORD, new=NEW_PASSWORD):
    return client.post("/admin/password_change/", {"old_password": old, "new_password1": new,
                                                   "new_password2": new})


def test_password_change_goes_through_the_service_and_keeps_the_session(admin_client):
    user = admin_client.admin_user
    _, refresh = token_pair_for_user(user)

    response = change_password(admin_client)

    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    log = SystemLog.objects.get(message="Password changed")
    assert (log.event_type, log.severity, log.user_id, log.reported_by) == ("AUTH", Severity.INFO, str(user.pk), user)
    assert admin_client.get("/admin/password_change/done/").status_code == 200  # still signed in
    with pytest.raises(InvalidToken):  # tokens issued before the change are over
        token_pair_rotate(refresh_token=refresh)


def test_password_change_refusals_are_form_errors(admin_client):
    wrong = change_password(admin_client, old="not-it")
    weak = change_password(admin_client, new="password")

    assert "old_password" in wrong.context["form"].errors
    assert "new_password2" in weak.context["form"].errors
    admin_client.admin_user.refresh_from_db()
    assert admin_client.admin_user.check_password(DEFAULT_PASSWORD)
    assert not SystemLog.objects.filter(message="Password changed").exists()


def test_wrong_current_passwords_are_logged_and_limited_per_account_like_the_api(admin_client, settings):
    from freezegun import freeze_time

    settings.RATE_LIMIT_LOGIN = "2/m"
    with freeze_time():
        answers = [change_password(admin_client, old=f"guess{n}") for n in range(3)]
    assert [a.context["form"].errors["old_password"] for a in answers[:2]] == [["Current password is wrong"]] * 2
    assert answers[2].context["form"].non_field_errors()[0].startswith("Too many attempts")
    failed = SystemLog.objects.filter(event_type="AUTH", message="Failed password check")
    assert failed.count() == 2 and {e.user_id for e in failed} == {str(admin_client.admin_user.pk)}


@pytest.mark.parametrize("error, field, text", [
    (ValidationFailed("Password is too weak", fields={"password": ["Too much like the username"]}),
     "new_password2", "Too much like the username"),
    (NotFound("User not found"), "__all__", "User not found"),
])
def test_a_service_refusal_is_shown_on_the_form(admin_client, monkeypatch, error, field, text):
    def refuse(**kwargs):
        raise error

    monkeypatch.setattr("accounts.admin.services.user_update", refuse)
    response = change_password(admin_client)
    assert response.status_code == 200
    assert response.context["form"].errors[field] == [text]


def test_an_it_operator_changes_their_own_password_through_the_service(client, make_user):
    operator = user_grant_role(actor=make_user(roles=["ADMIN"]), user=make_user(), role="IT_OPERATOR")
    client.force_login(operator)
    assert change_password(client).status_code == 302
    assert SystemLog.objects.filter(message="Password changed", user_id=str(operator.pk)).exists()


@pytest.mark.parametrize(("zone", "shown"), [("UTC", "2026-11-21 13:23:45 UTC"),
                                             ("America/St_Johns", "2026-11-21 09:53:45 NST")])
def test_admin_dates_show_seconds_and_the_zone(admin_client, settings, zone, shown):
    """In TIME_ZONE, whatever the suite runs in (St. John's: UTC-3:30, with its own abbreviation)."""
    settings.TIME_ZONE = zone
    log = SystemLog.objects.create(timestamp=datetime(2026, 11, 21, 13, 23, 45, tzinfo=dt_timezone.utc),
                                   event_type="AUTH", severity="info", message="hello")
    listing = admin_client.get("/admin/ops/systemlog/").content.decode()
    page = admin_client.get(f"/admin/ops/systemlog/{log.pk}/change/").content.decode()
    assert shown in listing
    assert shown in page


def test_a_refused_admin_page_answers_its_own_403_message(client, make_user):
    operator = user_grant_role(actor=make_user(roles=["ADMIN"]), user=make_user(), role="IT_OPERATOR")
    client.force_login(operator)
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 403
    body = response.json()
    assert (body["status"], body["error"]) == (403, "forbidden")
    assert body["message"] == "You do not have permission to perform this action"
