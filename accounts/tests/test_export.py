"""GET /api/v1/user/{id}/export: everything the system holds about one person (accounts.export)."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.test.utils import CaptureQueriesContext
from django.db import connections
from django.utils import timezone

from bookings_project.testing import REVOKED_CALLERS
from bookings_project.tests.helpers import assert_error
from catalog.tests.factories import make_item
from ops.models import SystemLog
from reservations.models import BookingStatus
from reservations.tests.factories import book

pytestmark = pytest.mark.django_db(databases=["default", "documents"])


@pytest.fixture
def person(make_user, organizer, api_client):
    """A customer with three bookings (one cancelled) and a failed login against the account."""
    user = make_user(username="dana", email="dana@example.com")
    start = timezone.now() + timedelta(days=10)
    items = [make_item(organizer, name=f"Class {i}", start=start + timedelta(days=i), capacity=3,
                       tiers=[("Std", "12.50", 3)]) for i in range(3)]
    for item in items:
        book(user, item)
    book(user, make_item(organizer, name="Dropped", start=start + timedelta(days=9)), status=BookingStatus.CANCELLED)
    api_client.post("/api/v1/auth/login", {"username": "dana", "password": "not-it"}, format="json")
    SystemLog.objects.create(timestamp=timezone.now() - timedelta(days=1), event_type="USER", severity="info",
                             message="Newsletter consent given", user_id=str(user.pk))
    SystemLog.objects.create(timestamp=timezone.now(), event_type="USER", severity="info", message="Someone else",
                             user_id=str(user.pk + 1))
    return user


def test_a_person_exports_their_own_data(person, client_for):
    response = client_for(person).get(f"/api/v1/user/{person.pk}/export")

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": person.pk, "username": "dana", "email": "dana@example.com", "roles": ["USER"],
                            "firstName": "", "lastName": "", "createdAt": body["user"]["createdAt"],
                            "lastLogin": None, "active": True, "bookingReminders": True}
    assert [b["itemName"] for b in body["bookings"]] == ["Class 0", "Class 1", "Class 2", "Dropped"]
    assert [b["status"] for b in body["bookings"]] == ["CONFIRMED"] * 3 + ["CANCELLED"]
    assert body["bookings"][0]["pricePaid"] == 12.5 and body["bookings"][0]["priceTier"] == "Std"
    assert [entry["message"] for entry in body["systemLog"]] == ["Failed login attempt", "Newsletter consent given"]
    assert body["systemLog"][0]["ipAddress"] == "127.0.0.1"
    assert all(entry["userId"] == str(person.pk) for entry in body["systemLog"])
    assert body["systemLogTruncated"] is False and body["exportedAt"].endswith("Z")
    assert person.password not in response.content.decode() and "pbkdf2" not in response.content.decode()


def test_each_export_is_an_audit_entry_naming_who_exported(person, admin, client_for):
    client_for(admin).get(f"/api/v1/user/{person.pk}/export")

    entry = SystemLog.objects.get(message="Personal data exported")
    assert (entry.user_id, entry.additional_data, entry.reported_by_id) == (str(person.pk), {"by": admin.pk}, admin.pk)


@pytest.mark.parametrize("caller, expected", [
    (None, 401), (["USER"], 403), (["EVENT_ORGANIZER"], 403), (["IT_OPERATOR"], 403), (["ADMIN"], 200),
    ("self", 200), *((how, 401) for how in REVOKED_CALLERS),
])
def test_who_may_export(person, caller_client, client_for, caller, expected):
    client = client_for(person) if caller == "self" else caller_client(caller)
    response = client.get(f"/api/v1/user/{person.pk}/export")
    if expected == 200:
        assert response.status_code == 200 and response.json()["user"]["id"] == person.pk
    else:
        assert_error(response, expected)


def test_an_unknown_user_is_404_for_an_admin(admin, client_for):
    assert_error(client_for(admin).get("/api/v1/user/999999/export"), 404)


def test_a_flood_of_log_entries_naming_the_person_is_cut_and_says_so(person, client_for, monkeypatch):
    """Any account may POST /logs naming any userId: that part's length is not the person's."""
    from accounts import export

    monkeypatch.setattr(export, "EXPORT_LOG_ENTRIES", 3)
    SystemLog.objects.bulk_create(SystemLog(timestamp=timezone.now() - timedelta(hours=i), event_type="NOISE",
                                            severity="info", message=f"flood {i}", user_id=str(person.pk))
                                  for i in range(1, 6))
    body = client_for(person).get(f"/api/v1/user/{person.pk}/export").json()
    assert len(body["systemLog"]) == 3 and body["systemLogTruncated"] is True
    assert body["systemLog"][0]["timestamp"] >= body["systemLog"][-1]["timestamp"]  # the newest kept


def test_a_fixed_number_of_queries_whatever_the_history(person, organizer, client_for):
    client = client_for(person)

    def queries():
        with CaptureQueriesContext(connections["default"]) as captured:
            assert client.get(f"/api/v1/user/{person.pk}/export").status_code == 200
        return len(captured)

    before = queries()
    start = timezone.now() + timedelta(days=40)
    for i in range(8):
        book(person, make_item(organizer, name=f"More {i}", start=start + timedelta(days=i)))
    assert queries() == before


def test_exports_are_limited_per_account(person, client_for, settings):
    settings.RATE_LIMIT_EXPORT = "2/h"
    client = client_for(person)
    assert [client.get(f"/api/v1/user/{person.pk}/export").status_code for _ in range(2)] == [200, 200]
    response = client.get(f"/api/v1/user/{person.pk}/export")
    assert_error(response, 429)
    assert int(response["Retry-After"]) > 0


def test_the_export_limit_counts_the_account_not_the_way_its_id_is_written(person, client_for, settings):
    """The route takes /user/05/export as user 5: keyed by the path's text, each spelling of the id
    was a fresh limit (unlimited exports)."""
    settings.RATE_LIMIT_EXPORT = "2/h"
    client = client_for(person)
    codes = [client.get(f"/api/v1/user/{'0' * zeros}{person.pk}/export").status_code for zeros in range(3)]
    assert codes == [200, 200, 429]


def test_the_log_part_is_bounded_in_bytes_too(person, client_for, monkeypatch):
    """POST /logs accepts 10,000-character messages and 16 KB of additionalData: 10,000 such
    entries naming one account made a 265 MB document (1.1 GB in the worker), at the export
    limit's rate, for any account that floods its own id."""
    import json

    from accounts import export

    monkeypatch.setattr(export, "EXPORT_LOG_BYTES", 100_000)
    SystemLog.objects.bulk_create(SystemLog(timestamp=timezone.now() - timedelta(minutes=i), event_type="NOISE",
                                            severity="info", message="m" * 10_000, user_id=str(person.pk),
                                            additional_data={"note": "é" * 8_000}) for i in range(1, 21))
    body = client_for(person).get(f"/api/v1/user/{person.pk}/export").json()
    assert body["systemLogTruncated"] is True
    assert 0 < len(body["systemLog"]) < 20
    assert len(json.dumps(body["systemLog"], ensure_ascii=False).encode()) <= 100_000
    assert [entry["message"] for entry in body["systemLog"]] == ["Failed login attempt"] + ["m" * 10_000] * (
        len(body["systemLog"]) - 1)  # the newest kept


def test_an_admin_exports_a_deactivated_account(person, admin, make_user, client_for):
    """Access requests often come after an account was closed, and its history stays (contract §4)."""
    client_for(admin).delete(f"/api/v1/user/{person.pk}")

    response = client_for(admin).get(f"/api/v1/user/{person.pk}/export")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["id"] == person.pk and body["user"]["active"] is False
    assert {b["status"] for b in body["bookings"]} == {"CANCELLED"}  # the future ones, cancelled on deactivation
    assert "User deleted" in [entry["message"] for entry in body["systemLog"]]
    assert_error(client_for(make_user()).get(f"/api/v1/user/{person.pk}/export"), 403)


def test_the_profile_holds_every_personal_field_of_the_account(person, client_for):
    """Names (set in the admin), when the account was made and when it last signed in to the admin
    are the person's data too."""
    person.first_name, person.last_name = "Dana", "Scully"
    person.last_login = timezone.now() - timedelta(hours=3)
    person.save()

    user = client_for(person).get(f"/api/v1/user/{person.pk}/export").json()["user"]
    assert (user["firstName"], user["lastName"]) == ("Dana", "Scully")
    assert user["createdAt"] == person.date_joined.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
    assert user["lastLogin"] == person.last_login.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


def test_other_accounts_ip_addresses_are_not_in_the_export(person, admin, make_user, client_for):
    """An ADMIN's change to the account, or an ADMIN's export of it, is recorded with the ADMIN's
    address; another account's POST /logs naming the person with an address it chose. Neither
    address is the person's to receive. Their own and the failed logins against them stay."""
    client_for(admin).put(f"/api/v1/user/{person.pk}", {"roles": ["USER", "EVENT_ORGANIZER"]}, format="json",
                          REMOTE_ADDR="198.51.100.7")
    client_for(admin).get(f"/api/v1/user/{person.pk}/export", REMOTE_ADDR="198.51.100.7")
    client_for(make_user(username="nosy")).post("/logs", {"eventType": "NOTE", "severity": "info", "message": "seen",
                                                          "userId": str(person.pk), "ipAddress": "203.0.113.9"},
                                                format="json")
    client_for(person).put(f"/api/v1/user/{person.pk}", {"password": "An0ther-secret!", "currentPassword": "nope"},
                           format="json", REMOTE_ADDR="192.0.2.44")

    body = client_for(person).get(f"/api/v1/user/{person.pk}/export").json()
    addresses = {entry["message"]: entry["ipAddress"] for entry in body["systemLog"]}
    assert addresses == {"Failed password check": "192.0.2.44", "seen": None, "Personal data exported": None,
                         "User roles changed": None, "Failed login attempt": "127.0.0.1",
                         "Newsletter consent given": None}
    assert "198.51.100.7" not in str(body) and "203.0.113.9" not in str(body)
    by_admin = next(entry for entry in body["systemLog"] if entry["message"] == "User roles changed")
    assert by_admin["reportedBy"] == str(admin.pk) and by_admin["additionalData"]["by"] == admin.pk


def test_an_export_that_fails_is_not_recorded_as_made(person, admin, client_for, monkeypatch):
    """The audit entry says the data went out: it is written once everything is read."""
    from django.db import DatabaseError

    from accounts import export

    class Failing:
        def filter(self, **kwargs):
            return self

        def order_by(self, *fields):
            return self

        def __iter__(self):
            raise DatabaseError("canceling statement due to statement timeout")

    monkeypatch.setattr(export, "booking_queryset", Failing)
    client = client_for(admin)
    client.raise_request_exception = False
    assert client.get(f"/api/v1/user/{person.pk}/export").status_code == 500
    assert not SystemLog.objects.filter(message="Personal data exported").exists()


def test_the_document_names_the_time_zone_of_its_booking_times(person, client_for, settings):
    """Bookings keep the booking API's local times without offset, the log its UTC: a document
    read outside the API says which zone the local ones are in."""
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "America/New_York"
    body = client_for(person).get(f"/api/v1/user/{person.pk}/export").json()
    assert body["timeZone"] == "America/New_York"
    booking = person.bookings.order_by("booking_date", "id").first()
    first = body["bookings"][0]
    assert "+" not in first["startTime"] and not first["startTime"].endswith("Z")
    assert datetime.fromisoformat(first["startTime"]).replace(tzinfo=ZoneInfo(body["timeZone"])) == booking.start_time
    assert body["systemLog"][0]["timestamp"].endswith("Z") and body["exportedAt"].endswith("Z")


def test_an_admin_answering_many_requests_is_limited_per_exported_account(person, make_user, admin, client_for, settings):
    settings.RATE_LIMIT_EXPORT = "2/h"
    client = client_for(admin)
    others = [make_user() for _ in range(3)]
    assert [client.get(f"/api/v1/user/{user.pk}/export").status_code for user in others] == [200, 200, 200]
    assert [client.get(f"/api/v1/user/{person.pk}/export").status_code for _ in range(3)] == [200, 200, 429]
