"""The users admin: role filter (SQLite and PostgreSQL), grant/deactivate actions through the
services, no password hashes, and the "IT operators" group following the IT_OPERATOR role
whether roles change through the API or the admin."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.utils import timezone

from accounts.models import User
from accounts.services import IT_OPERATORS_GROUP, IT_OPERATORS_PERMISSIONS, user_grant_role
from catalog.services import item_create
from ops.models import SystemLog
from reservations.models import BookingStatus
from reservations.services import booking_create

pytestmark = pytest.mark.django_db

USERS_URL = "/admin/accounts/user/"


def run_action(client, action, users, **confirmed):
    response = client.post(USERS_URL, {"action": action, "_selected_action": [u.pk for u in users], **confirmed},
                           follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]


def in_operator_group(user) -> bool:
    return user.groups.filter(name=IT_OPERATORS_GROUP).exists()


@pytest.mark.parametrize("role, expected", [
    ("IT_OPERATOR", {"op1", "op_and_org"}),
    ("EVENT_ORGANIZER", {"org1", "op_and_org"}),
    ("USER", {"plain"}),
    ("ADMIN", {"boss"}),
])
def test_role_filter_matches_members_of_the_json_roles_list(admin_client, make_user, role, expected):
    make_user(roles=["IT_OPERATOR"], username="op1")
    make_user(roles=["EVENT_ORGANIZER"], username="org1")
    make_user(roles=["IT_OPERATOR", "EVENT_ORGANIZER"], username="op_and_org")
    make_user(roles=["USER"], username="plain")

    response = admin_client.get(USERS_URL, {"role": role})

    assert response.status_code == 200
    assert {u.username for u in response.context["cl"].queryset} == expected


def test_unknown_role_in_filter_lists_everyone(admin_client, make_user):
    make_user(username="plain")
    response = admin_client.get(USERS_URL, {"role": "NOPE"})
    assert {u.username for u in response.context["cl"].queryset} == {"boss", "plain"}


def test_user_list_and_change_page_never_show_password_hashes(admin_client, make_user):
    user = make_user(username="someone")
    listing = admin_client.get(USERS_URL, {"q": "someone"})
    page = admin_client.get(f"{USERS_URL}{user.pk}/change/")

    assert listing.status_code == 200 and "someone@example.com" in listing.content.decode()
    assert page.status_code == 200
    body = page.content.decode()
    hash_parts = user.password.split("$")
    assert user.password not in body and hash_parts[-1] not in body
    assert "id_password" not in body and "/password/" not in body
    # Roles are shown, not editable.
    assert 'name="roles"' not in body and "USER" in body


def test_admin_password_form_is_not_served(admin_client, make_user):
    user = make_user()
    response = admin_client.get(f"{USERS_URL}{user.pk}/password/", follow=True)
    assert b'name="password1"' not in response.content


def test_change_form_saves_username_and_email_through_the_service(admin_client, make_user):
    user = make_user(username="before")
    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", {
        "username": "after", "email": "After@Example.COM", "first_name": "Ann", "last_name": "Lee",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "after", "after@example.com", "Ann", "Lee")
    assert user.roles == ["USER"]  # roles are not part of the form


def test_a_change_form_saved_after_the_user_changed_their_profile_writes_only_what_the_admin_changed(
        admin_client, make_user):
    """The admin opens a user's page; meanwhile the user changes their email and turns
    reminders off (the API); the admin then corrects the last name and saves. The form sends
    back every field as the page showed it: saving all that differed from the row undid the
    user's changes (the old email back — where password resets then went — and reminders on
    again). Only the fields this admin changed are written."""
    import re

    from accounts.services import user_update

    user = make_user(username="ann", email="ann@example.com", first_name="Ann", last_name="Leee")
    page = admin_client.get(f"{USERS_URL}{user.pk}/change/").content.decode()
    shown = dict(re.findall(r'name="(initial-[^"]+)" value="([^"]*)"', page))
    assert {"initial-email", "initial-booking_reminders", "initial-last_name"} <= set(shown), shown
    user_update(actor=user, user=user, email="ann.new@example.com", booking_reminders=False)

    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", {
        **shown, "username": "ann", "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
        "booking_reminders": "on"})

    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.email, user.booking_reminders, user.last_name) == ("ann.new@example.com", False, "Lee")


def test_a_name_the_admin_left_as_shown_is_not_checked_again_when_the_user_renamed_meanwhile(admin_client, make_user):
    """The user renames themselves while the admin's page is open, and a newcomer takes their old
    email and name; the admin corrects the last name. The page sends the old name and address
    back unchanged (not written: only what this admin changed is): they were still checked as
    if the admin had chosen them — "A user with this username already exists" on fields the
    admin never touched, and the page could not be saved until reloaded."""
    import re

    from accounts.services import user_update

    user = make_user(username="ann", email="ann@example.com", last_name="Leee")
    page = admin_client.get(f"{USERS_URL}{user.pk}/change/").content.decode()
    shown = dict(re.findall(r'name="(initial-[^"]+)" value="([^"]*)"', page))
    user_update(actor=user, user=user, username="ann2", email="ann2@example.com")
    make_user(username="ann", email="ann@example.com")

    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", {
        **shown, "username": "ann", "email": "ann@example.com", "first_name": "", "last_name": "Lee",
        "booking_reminders": "on"})

    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert (user.username, user.email, user.last_name) == ("ann2", "ann2@example.com", "Lee")


def test_a_deactivated_user_is_read_only_in_the_admin_and_a_stale_form_changes_nothing(admin_client, make_user):
    from accounts.services import user_deactivate

    user = make_user(username="gone")
    user_deactivate(actor=admin_client.admin_user, user=user)
    page = admin_client.get(f"{USERS_URL}{user.pk}/change/").content.decode()
    assert 'name="username"' not in page  # shown, not editable
    assert 'name="_save"' not in page and 'name="_continue"' not in page

    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", {"username": "back", "email": "back@example.com"},
                                 follow=True)
    assert response.status_code == 200
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["gone is deactivated; nothing was changed."]
    user.refresh_from_db()
    assert (user.username, user.is_active) == ("gone", False)
    assert not LogEntry.objects.filter(object_id=str(user.pk)).exists()


@pytest.mark.parametrize("refusal", ["deactivated", "actor demoted"])
def test_a_save_the_service_refuses_says_so_once_and_leaves_no_history(admin_client, make_user, monkeypatch, refusal):
    """The account deactivated, or the signed-in ADMIN demoted, between the form's checks and
    the service's lock: one error, the change page again — no "changed successfully" beside it
    and no history entry of a change that was not made."""
    from accounts import services
    from bookings_project.errors import Forbidden, NotFound

    user = make_user(username="mine", email="mine@example.com")
    error = NotFound("User not found") if refusal == "deactivated" else Forbidden()

    def refused(**kwargs):
        raise error

    monkeypatch.setattr(services, "user_update", refused)
    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", {
        "username": "renamed", "email": "mine@example.com", "booking_reminders": "on"}, follow=True)

    assert response.redirect_chain == [(f"{USERS_URL}{user.pk}/change/", 302)]
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"mine: {error.message}; nothing was changed."]
    assert not LogEntry.objects.filter(object_id=str(user.pk)).exists()
    user.refresh_from_db()
    assert user.username == "mine"


@pytest.mark.parametrize("field, taken, message", [
    ("email", "Taken@Example.com", "A user with this email already exists"),
    ("username", "TAKEN", "A user with this username already exists"),
    # NFKC-equal forms too: stored normalized (accounts.selectors), they are the same account
    ("email", "taken@ＥＸＡＭＰＬＥ.com", "A user with this email already exists"),
    ("username", "ＴＡＫＥＮ", "A user with this username already exists"),
])
def test_a_case_variant_of_another_users_email_or_username_is_a_plain_form_error(admin_client, make_user, field,
                                                                                 taken, message):
    make_user(username="taken", email="taken@example.com")
    user = make_user(username="mine", email="mine@example.com")
    data = {"username": "mine", "email": "mine@example.com", field: taken}

    response = admin_client.post(f"{USERS_URL}{user.pk}/change/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [message]}
    assert "user_email_ci_unique" not in response.content.decode()
    user.refresh_from_db()
    assert (user.username, user.email) == ("mine", "mine@example.com")


@pytest.mark.parametrize("action, role, staff", [
    ("grant_event_organizer", "EVENT_ORGANIZER", False),
    ("grant_it_operator", "IT_OPERATOR", True),
    ("grant_admin", "ADMIN", True),
])
def test_grant_actions_add_the_role_through_the_service(admin_client, make_user, action, role, staff):
    first, second = make_user(), make_user()

    messages = run_action(admin_client, action, [first, second])

    assert "2 user(s) now hold %s." % role in messages
    for user in (first, second):
        user.refresh_from_db()
        assert user.roles == sorted({"USER", role})
        assert user.is_staff is staff
        assert in_operator_group(user) is (role == "IT_OPERATOR")
    log = SystemLog.objects.filter(message="User roles changed", user_id=str(first.pk)).get()
    assert log.reported_by == admin_client.admin_user and log.additional_data["to"] == first.roles


def history(user):
    return list(LogEntry.objects.filter(object_id=str(user.pk)).values_list("change_message", flat=True))


def test_grant_action_leaves_history_on_the_users_whose_roles_changed(admin_client, make_user):
    plain, already = make_user(), make_user(roles=["EVENT_ORGANIZER"])

    messages = run_action(admin_client, "grant_event_organizer", [plain, already])

    assert messages == ["1 user(s) now hold EVENT_ORGANIZER.",
                        f"1 user(s) left as they were: held EVENT_ORGANIZER already ({already.username})"]
    assert history(plain) == ["Ran the action “Grant EVENT_ORGANIZER”."]
    entry = LogEntry.objects.get(object_id=str(plain.pk))
    assert (entry.user, entry.get_change_message()) == (admin_client.admin_user, history(plain)[0])
    assert history(already) == []


def test_deactivate_action_cancels_future_bookings_and_reports_refusals(admin_client, make_user):
    customer = make_user(username="leaving")
    organizer = make_user(roles=["EVENT_ORGANIZER"])
    start = timezone.now() + timedelta(days=3)
    item = item_create(organizer=organizer, name="Gig", start_time=start, end_time=start + timedelta(hours=2),
                       capacity=5)
    booking = booking_create(user=customer, item_id=item.pk)

    asked = admin_client.post(USERS_URL, {"action": "deactivate",
                                          "_selected_action": [customer.pk, admin_client.admin_user.pk]})
    page = asked.content.decode()  # it asks first, showing what it will cancel; nothing changed yet
    assert asked.status_code == 200 and "cannot be undone" in page and 'name="post" value="yes"' in page
    assert '<td>leaving</td><td>' in page and '<td class="num">1</td>' in page
    customer.refresh_from_db()
    assert customer.is_active and BookingStatus.CONFIRMED == booking.__class__.objects.get(pk=booking.pk).status

    messages = run_action(admin_client, "deactivate", [customer, admin_client.admin_user], post="yes")

    customer.refresh_from_db()
    booking.refresh_from_db()
    item.refresh_from_db()
    assert customer.is_active is False and not customer.has_usable_password()
    assert booking.status == BookingStatus.CANCELLED and item.sold == 0
    assert "1 user(s) deactivated." in messages
    assert "1 user(s) not changed: You cannot delete your own account (boss)" in messages
    admin_client.admin_user.refresh_from_db()
    assert admin_client.admin_user.is_active
    assert history(customer) == ["Ran the action “Deactivate (cancels their future bookings)”."]
    assert history(admin_client.admin_user) == []

    again = run_action(admin_client, "deactivate", [customer], post="yes")  # a second time: nothing to do, and said so
    assert again == ["1 user(s) left as they were: deactivated already (leaving)"]
    assert len(history(customer)) == 1


def test_a_database_error_on_one_user_leaves_the_others_changed_with_their_history(admin_client, make_user,
                                                                                   monkeypatch):
    """A lock wait timed out (another admin deactivating the same user, a long booking) on the
    second user: the first stays deactivated with its history, the page says which one failed —
    not "The selection was not valid; nothing was changed" after a customer was emailed."""
    from django.db import OperationalError

    from accounts import services

    first, second = make_user(username="first"), make_user(username="second")
    real = services.user_deactivate

    def deactivate(*, user, **kwargs):
        if user.pk == second.pk:
            raise OperationalError("canceling statement due to lock timeout")
        return real(user=user, **kwargs)

    monkeypatch.setattr(services, "user_deactivate", deactivate)
    messages = run_action(admin_client, "deactivate", [first, second], post="yes")

    assert messages == ["1 user(s) not changed: the database did not answer in time or failed; run the action again "
                        "(second)", "1 user(s) deactivated."]
    assert [u.is_active for u in User.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")] == [False, True]
    assert list(LogEntry.objects.values_list("object_id", flat=True)) == [str(first.pk)]


def test_a_database_gone_midway_still_reports_the_users_changed_before_it(admin_client, make_user, monkeypatch):
    """The database going away on the second user (its connection closed: every later query of
    the page fails, the history write included): the first user stays deactivated, and the page
    says so and that its history could not be written — not "The selection was not valid;
    nothing was changed" (HardenedAdminMixin), which the history write's error reached."""
    from django.contrib.admin.models import LogEntryManager
    from django.db import InterfaceError, OperationalError

    from accounts import services

    first, second = make_user(username="first"), make_user(username="second")
    real = services.user_deactivate

    def deactivate(*, user, **kwargs):
        if user.pk == second.pk:
            raise OperationalError("server closed the connection unexpectedly")
        return real(user=user, **kwargs)

    def log_actions(*args, **kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(services, "user_deactivate", deactivate)
    monkeypatch.setattr(LogEntryManager, "log_actions", log_actions)
    messages = run_action(admin_client, "deactivate", [first, second], post="yes")

    assert messages == ["1 user(s) not changed: the database did not answer in time or failed; run the action again "
                        "(second)", "1 user(s) deactivated.",
                        "The admin history of the 1 user(s) changed could not be written (the database failed): first"]
    assert [u.is_active for u in User.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")] == [False, True]


def test_group_follows_role_changes_through_the_api(make_user, client_for):
    admin_user = make_user(roles=["ADMIN"])
    user = make_user()
    api = client_for(admin_user)

    granted = api.put(f"/api/v1/user/{user.pk}", {"roles": ["USER", "IT_OPERATOR"]}, format="json")
    assert granted.status_code == 200, granted.content
    user.refresh_from_db()
    assert in_operator_group(user) and user.is_staff
    assert user.has_perm("ops.view_systemlog") and not user.has_perm("accounts.view_user")

    revoked = api.put(f"/api/v1/user/{user.pk}", {"roles": ["USER"]}, format="json")
    assert revoked.status_code == 200, revoked.content
    user = User.objects.get(pk=user.pk)  # fresh permission cache
    assert not in_operator_group(user) and not user.is_staff
    assert not user.has_perm("ops.view_systemlog")


def test_group_follows_role_granted_in_the_admin_then_removed_through_the_api(admin_client, make_user,
                                                                              client_for):
    user = make_user()
    run_action(admin_client, "grant_it_operator", [user])
    assert in_operator_group(user)

    response = client_for(admin_client.admin_user).put(f"/api/v1/user/{user.pk}", {"roles": ["EVENT_ORGANIZER"]},
                                                       format="json")
    assert response.status_code == 200
    assert not in_operator_group(user)


def test_migration_creates_the_group_with_exactly_the_ops_permissions():
    group = Group.objects.get(name=IT_OPERATORS_GROUP)
    perms = {(p.content_type.app_label, p.codename) for p in group.permissions.select_related("content_type")}
    assert perms == {("ops", codename) for codename in IT_OPERATORS_PERMISSIONS}
    assert {codename for _, codename in perms} == {
        "view_systemlog", "view_job", "change_job", "view_outboxevent", "change_outboxevent",
        "view_reconciliationchange"}


def test_group_is_recreated_with_its_permissions_when_missing(make_user):
    Group.objects.filter(name=IT_OPERATORS_GROUP).delete()
    admin_user, user = make_user(roles=["ADMIN"]), make_user()

    user_grant_role(actor=admin_user, user=user, role="IT_OPERATOR")

    user = User.objects.get(pk=user.pk)
    assert in_operator_group(user)
    assert user.has_perm("ops.change_job") and user.has_perm("ops.view_reconciliationchange")
    assert not user.has_perm("ops.delete_job") and not user.has_perm("reservations.view_booking")


def test_revoke_actions_take_a_role_away_through_the_service(admin_client, make_user):
    """The admin can take back what it grants (not only through PUT /api/v1/user/{id}); the
    service's rules hold: no ADMIN drops their own ADMIN role, nor anyone a superuser's."""
    organizer, operator = make_user(roles=["EVENT_ORGANIZER"]), make_user(roles=["IT_OPERATOR"])
    plain = make_user(username="plain")

    messages = run_action(admin_client, "revoke_event_organizer", [organizer, plain])
    assert messages == ["1 user(s) no longer hold EVENT_ORGANIZER.",
                        "1 user(s) left as they were: did not hold EVENT_ORGANIZER (plain)"]
    assert run_action(admin_client, "revoke_it_operator", [operator]) == ["1 user(s) no longer hold IT_OPERATOR."]
    organizer.refresh_from_db()
    operator.refresh_from_db()
    assert organizer.roles == ["USER"] and operator.roles == ["USER"]
    assert not operator.is_staff and not in_operator_group(operator)
    assert history(organizer) == ["Ran the action “Revoke EVENT_ORGANIZER”."] and history(plain) == []
    assert SystemLog.objects.filter(message="User roles changed", user_id=str(operator.pk)).exists()

    boss = admin_client.admin_user
    refused = run_action(admin_client, "revoke_admin", [boss])
    assert refused == [f"1 user(s) not changed: You cannot remove your own ADMIN role ({boss.username})"]


def test_an_address_stored_before_nfkc_saves_the_accounts_other_fields_in_the_admin(admin_client, make_user):
    """The form sends the email back as stored: an account whose address was stored before emails
    were NFKC-normalized ("x@ｅｘａｍｐｌｅ.com", beside another account's x@example.com, as both
    databases allowed then) got "A user with this email already exists" and could not be saved
    at all. (A username stored so is normalized by Django's own model validation, as ever.)"""
    make_user(username="ada", email="x@example.com")
    legacy = make_user(username="legacy", email="y@example.com")
    User.objects.filter(pk=legacy.pk).update(email="x@ｅｘａｍｐｌｅ.com")

    response = admin_client.post(f"{USERS_URL}{legacy.pk}/change/", {
        "username": "legacy", "email": "x@ｅｘａｍｐｌｅ.com", "first_name": "Ada", "last_name": "L"}, follow=True)

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f'The user “<a href="{USERS_URL}{legacy.pk}/change/">legacy</a>” was changed successfully.']
    legacy.refresh_from_db()
    assert (legacy.email, legacy.first_name) == ("x@ｅｘａｍｐｌｅ.com", "Ada")


def test_deactivate_refuses_a_selection_larger_than_one_confirmation_page(admin_client, make_user, monkeypatch,
                                                                            settings):
    """"Select all" over 11,000 accounts built a 2 s, 1.7 MB page whose confirming POST (every id a
    field) Django refused anyway; beyond DEACTIVATE_MAX it says so and changes nothing."""
    from accounts.admin import UserAdmin

    assert UserAdmin.DEACTIVATE_MAX + 10 < settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    monkeypatch.setattr(UserAdmin, "DEACTIVATE_MAX", 2)
    users = [make_user(username=f"many{i}") for i in range(3)]

    response = admin_client.post(f"{USERS_URL}?q=many", {"action": "deactivate", "select_across": "1", "index": "0",
                                                          "_selected_action": [users[0].pk]}, follow=True)
    assert "cannot be undone" not in response.content.decode()
    assert ["3 users selected; deactivate at most 2 at a time (narrow the list with a search or a filter). "
            "Nothing was changed."] == [str(m) for m in get_messages(response.wsgi_request)]
    assert all(User.objects.get(pk=user.pk).is_active for user in users)

    asked = admin_client.post(USERS_URL, {"action": "deactivate", "_selected_action": [u.pk for u in users[:2]]})
    assert asked.status_code == 200 and "cannot be undone" in asked.content.decode()
