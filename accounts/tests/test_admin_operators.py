"""IT operators in the admin (contract §3): staff with the ops pages only, whose actions
(execute a job, retry an outbox event) work with the group's permissions while records stay
read-only; everything else is refused — whatever other role the operator holds besides. Who is
not staff (USER, EVENT_ORGANIZER, or a session whose account was deactivated, changed its
password or lost its staff role since) is sent to the login page from every admin URL."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.utils import timezone

from accounts.models import User
from accounts.services import user_deactivate, user_grant_role, user_revoke_role, user_update
from catalog.models import BookableItem
from catalog.tests.factories import make_item
from ops.jobs import job_create_notification
from ops.models import Job, JobStatus, OutboxEvent, OutboxStatus, ReconciliationChange, SystemLog
from ops.outbox import EventType, outbox_enqueue
from reservations.models import Booking, BookingStatus
from reservations.services import booking_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, make_user):
    operator = make_user(username="ops1")
    user_grant_role(actor=make_user(roles=["ADMIN"]), user=operator, role="IT_OPERATOR")
    client.force_login(operator)
    return client


# --- every admin URL × who is signed in ----------------------------------------------------------

OPERATORS = [("IT_OPERATOR",), ("USER", "IT_OPERATOR"), ("EVENT_ORGANIZER", "IT_OPERATOR")]
NOT_STAFF = ["anonymous", "USER", "EVENT_ORGANIZER", "USER+EVENT_ORGANIZER", "operator deactivated",
             "operator with a new password", "operator whose IT_OPERATOR was revoked",
             "ADMIN whose ADMIN was revoked",
             # is_staff set around User.save() (a fixture loaded raw, an SQL update): roles decide
             "USER with a stale is_staff", "operator whose IT_OPERATOR was taken by an SQL update"]


@pytest.fixture
def records(make_user):
    """One row of every model the admin serves; `item` and `booking` of a customer."""
    organizer = make_user(roles=["EVENT_ORGANIZER"], username="org")
    item = make_item(organizer)
    booking = booking_create(user=make_user(username="customer"), item_id=item.pk)
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    return {
        "accounts/user": booking.user, "catalog/bookableitem": item, "reservations/booking": booking, "ops/job": job,
        "ops/systemlog": SystemLog.objects.create(timestamp=timezone.now(), event_type="APP", severity="info",
                                                  message="hi"),
        "ops/outboxevent": outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={}),
        "ops/reconciliationchange": ReconciliationChange.objects.create(
            job=job, entity_type="item", entity_id=str(item.pk), action="updated", field="name"),
    }


def model_pages(model, obj) -> list[str]:
    base = f"/admin/{model}/"
    return [base, f"{base}add/", f"{base}{obj.pk}/change/", f"{base}{obj.pk}/delete/", f"{base}{obj.pk}/history/"]


def refused_pages(records) -> list[str]:
    """Every admin URL outside the ops pages, and the ops pages that would write."""
    pages = [url for model in ("accounts/user", "catalog/bookableitem", "reservations/booking")
             for url in model_pages(model, records[model])]
    pages += [f"/admin/{model}/add/" for model in records if model.startswith("ops/")]
    pages += [f"/admin/{model}/{obj.pk}/delete/" for model, obj in records.items() if model.startswith("ops/")]
    return pages + [
        "/admin/reporting/revenue/",
        "/admin/accounts/user/?_to_field=id&_popup=1",  # the raw-id lookup popup of the booking form
        "/admin/autocomplete/?app_label=ops&model_name=job&field_name=created_by&term=",
        "/admin/autocomplete/?app_label=reservations&model_name=booking&field_name=item&term=",
    ]


def sign_in(client, make_user, who):
    """Sign `who` (NOT_STAFF, or a tuple of roles) in to the admin; returns the user."""
    if who == "anonymous":
        return None
    admin = make_user(roles=["ADMIN"], username="root")
    if isinstance(who, tuple) or "operator" in who:
        roles = who if isinstance(who, tuple) else ("IT_OPERATOR",)
        user = make_user(roles=[role for role in roles if role != "IT_OPERATOR"] or ["USER"], username="signed_in")
        user = user_grant_role(actor=admin, user=user, role="IT_OPERATOR")
        if "USER" not in roles and "USER" in user.roles:
            user = user_revoke_role(actor=admin, user=user, role="USER")
        assert user.roles == sorted(roles) and user.is_staff
    else:
        user = make_user(roles=["ADMIN"] if who.startswith("ADMIN") else who.split(" ")[0].split("+"), username="signed_in")
    client.force_login(user)
    user = User.objects.get(pk=user.pk)
    if who == "operator deactivated":
        user_deactivate(actor=admin, user=user)
    elif who == "operator with a new password":
        user_update(actor=admin, user=user, password="An0ther-Str0ng-One!")
    elif who == "operator whose IT_OPERATOR was revoked":
        user_revoke_role(actor=admin, user=user, role="IT_OPERATOR")
    elif who == "ADMIN whose ADMIN was revoked":
        user_update(actor=admin, user=user, roles=["USER"])
    elif who == "USER with a stale is_staff":
        User.objects.filter(pk=user.pk).update(is_staff=True)
    elif who == "operator whose IT_OPERATOR was taken by an SQL update":
        User.objects.filter(pk=user.pk).update(roles=["USER"])  # (is_staff and the group stay)
    return user


def attempt_changes(client, records, user) -> list[int]:
    """POSTs that would change what an operator must not change; their statuses."""
    target = user or records["accounts/user"]
    return [client.post(url, data).status_code for url, data in [
        ("/admin/accounts/user/", {"action": "grant_admin", "_selected_action": [target.pk]}),
        (f"/admin/accounts/user/{records['accounts/user'].pk}/change/",
         {"username": "hacked", "email": "h@example.com"}),
        ("/admin/accounts/user/", {"action": "deactivate", "post": "yes",
                                   "_selected_action": [records["accounts/user"].pk]}),
        (f"/admin/catalog/bookableitem/{records['catalog/bookableitem'].pk}/delete/", {"post": "yes"}),
        ("/admin/reservations/booking/", {"action": "cancel_bookings",
                                          "_selected_action": [records["reservations/booking"].pk]}),
        (f"/admin/ops/job/{records['ops/job'].pk}/change/", {"status": "completed"}),
        (f"/admin/ops/job/{records['ops/job'].pk}/delete/", {"post": "yes"}),
    ]]


def assert_nothing_changed(records, user):
    customer = User.objects.get(pk=records["accounts/user"].pk)
    assert (customer.username, customer.is_active) == ("customer", True)
    assert user is None or "ADMIN" not in User.objects.get(pk=user.pk).roles
    assert BookableItem.objects.get(pk=records["catalog/bookableitem"].pk).deleted_at is None
    assert Booking.objects.get(pk=records["reservations/booking"].pk).status == BookingStatus.CONFIRMED
    assert Job.objects.filter(pk=records["ops/job"].pk, status=JobStatus.QUEUED).exists()


@pytest.mark.parametrize("roles", OPERATORS, ids="+".join)
def test_operators_get_the_ops_pages_and_nothing_else(client, make_user, records, roles):
    user = sign_in(client, make_user, roles)
    for model, obj in records.items():
        if model.startswith("ops/"):
            for url in (f"/admin/{model}/", f"/admin/{model}/{obj.pk}/change/", f"/admin/{model}/{obj.pk}/history/"):
                assert client.get(url).status_code == 200, url
    assert client.get("/admin/").status_code == client.get("/admin/ops/").status_code == 200
    assert client.get("/admin/password_change/").status_code == 200  # their own password
    refused = {url: client.get(url).status_code for url in refused_pages(records)}
    assert refused == dict.fromkeys(refused, 403)
    # An app without a page for them has no index either (Django's "no such admin page").
    for app in ("accounts", "catalog", "reservations", "reporting"):
        assert client.get(f"/admin/{app}/").status_code == 404, app
    # No "view on site" shortcut looks up rows of any model for them (docs/DECISIONS.md).
    for model, obj in records.items():
        content_type = ContentType.objects.get_by_natural_key(*model.split("/"))
        for object_id in (obj.pk, "x"):
            assert client.get(f"/admin/r/{content_type.pk}/{object_id}/").status_code == 404, model
    assert set(attempt_changes(client, records, user)) == {403}
    assert_nothing_changed(records, user)


@pytest.mark.parametrize("who", NOT_STAFF)
def test_who_is_not_staff_is_sent_to_the_login_page_from_every_admin_url(client, make_user, records, who):
    user = sign_in(client, make_user, who)
    ops_pages = [url for model, obj in records.items() if model.startswith("ops/") for url in model_pages(model, obj)]
    for url in ["/admin/", "/admin/ops/", "/admin/password_change/", *ops_pages, *refused_pages(records)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next="), url
    for model, obj in records.items():
        content_type = ContentType.objects.get_by_natural_key(*model.split("/"))
        response = client.get(f"/admin/r/{content_type.pk}/{obj.pk}/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next="), model
    assert set(attempt_changes(client, records, user)) == {302}
    assert_nothing_changed(records, user)


def test_operator_index_lists_only_the_ops_pages(operator_client):
    page = operator_client.get("/admin/").content.decode()
    for url in ("/admin/ops/systemlog/", "/admin/ops/job/", "/admin/ops/outboxevent/",
                "/admin/ops/reconciliationchange/"):
        assert f'href="{url}"' in page
    for url in ("/admin/accounts/user/", "/admin/catalog/bookableitem/", "/admin/reservations/booking/",
                "/admin/reporting/", "/admin/auth/group/"):
        assert url not in page


def test_there_is_no_group_page_to_refuse(operator_client):
    assert operator_client.get("/admin/auth/group/").status_code == 404


def test_operator_sees_ops_records_read_only(operator_client):
    job = job_create_notification(recipient_email="a@example.com", subject="s", message="m")
    page = operator_client.get(f"/admin/ops/job/{job.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert operator_client.post(f"/admin/ops/job/{job.pk}/change/", {"status": "completed"}).status_code == 403
    assert operator_client.get(f"/admin/ops/job/{job.pk}/delete/").status_code == 403


def test_operator_executes_a_queued_job(operator_client, smtp_server):
    job = job_create_notification(recipient_email="a@example.com", subject="Ping", message="Body")

    response = operator_client.post("/admin/ops/job/", {"action": "execute_jobs", "_selected_action": [job.pk]},
                                    follow=True)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert "1 of 1 job(s) completed." in [str(m) for m in get_messages(response.wsgi_request)]
    assert [m["to"] for m in smtp_server.messages] == [["a@example.com"]]


def test_operator_retries_a_dead_event(operator_client):
    event = outbox_enqueue(event_type=EventType.GENERIC, recipient_email="x@example.com", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(status=OutboxStatus.DEAD, retry_count=5, error_message="boom")

    operator_client.post("/admin/ops/outboxevent/", {"action": "retry_events", "_selected_action": [event.pk]})

    event.refresh_from_db()
    assert (event.status, event.retry_count, event.error_message) == (OutboxStatus.PENDING, 0, "")


def test_staff_without_the_group_cannot_run_ops_actions(client, make_user):
    # IT_OPERATOR role set directly (no service): staff, but no group and so no permissions.
    bare = make_user(roles=["IT_OPERATOR"])
    client.force_login(bare)
    assert client.get("/admin/ops/job/").status_code == 403
