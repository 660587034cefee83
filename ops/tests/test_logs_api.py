"""/logs (seed 000 stories 3 and 4): record, filter, page, and who may do which."""

from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from bookings_project.testing import REVOKED_CALLERS
from ops.models import SystemLog
from bookings_project.tests.helpers import assert_error

pytestmark = pytest.mark.django_db

SEED_ENTRY = {
    "eventType": "AUTH",
    "severity": "error",
    "message": "Failed login attempt",
    "userId": "507f1f77bcf86cd799439011",
    "ipAddress": "192.168.1.1",
    "additionalData": {"reason": "Invalid password"},
}
T0 = datetime(2024, 8, 12, 10, 0, tzinfo=timezone.utc)


def add_log(minutes=0, **fields):
    values = {"timestamp": T0 + timedelta(minutes=minutes), "event_type": "APP", "severity": "info",
              "message": f"event at +{minutes}m"}
    values.update(fields)
    return SystemLog.objects.create(**values)


@pytest.fixture
def operator(make_user, client_for):
    return client_for(make_user(roles=["IT_OPERATOR"]))


# --- POST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["USER", "EVENT_ORGANIZER", "IT_OPERATOR", "ADMIN", "USER+IT_OPERATOR",
                                  "EVENT_ORGANIZER+IT_OPERATOR"])
def test_any_authenticated_user_records_an_event(make_user, client_for, role):
    user = make_user(roles=role.split("+"))
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    response = client_for(user).post("/logs", SEED_ENTRY, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body == {**SEED_ENTRY, "id": body["id"], "timestamp": body["timestamp"], "reportedBy": str(user.pk)}
    assert isinstance(body["id"], str) and body["id"]
    assert body["timestamp"].endswith("Z")
    assert before <= datetime.fromisoformat(body["timestamp"]) <= datetime.now(timezone.utc)
    stored = SystemLog.objects.get(pk=body["id"])
    assert stored.reported_by_id == user.pk and stored.user_id == SEED_ENTRY["userId"]


def test_minimal_event_has_null_optionals(make_user, client_for):
    response = client_for(make_user()).post("/logs", {"eventType": "APP", "severity": "debug", "message": "m"},
                                            format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["userId"] is None and body["ipAddress"] is None and body["additionalData"] == {}


def test_an_entry_sent_back_as_read_is_taken(make_user, client_for):
    """GET /logs shows an entry without a subject user as `"userId": null` (and `ipAddress`):
    sending that same shape back, as a client forwarding entries would, was a 400 for userId."""
    client = client_for(make_user())
    entry = {"eventType": "APP", "severity": "info", "message": "m", "userId": None, "ipAddress": None}

    response = client.post("/logs", entry, format="json")

    assert response.status_code == 201
    assert response.json()["userId"] is None and SystemLog.objects.get(pk=response.json()["id"]).user_id == ""


@pytest.mark.parametrize("change, field", [
    ({"severity": "fatal"}, "severity"),
    ({"severity": "ERROR"}, "severity"),
    ({"severity": None}, "severity"),
    ({"eventType": ""}, "eventType"),
    ({"message": ""}, "message"),
    ({"ipAddress": "999.1.1.1"}, "ipAddress"),
    ({"additionalData": ["not", "an", "object"]}, "additionalData"),
])
def test_invalid_event_is_400(make_user, client_for, change, field):
    body = {k: v for k, v in {**SEED_ENTRY, **change}.items() if v is not None}
    response = client_for(make_user()).post("/logs", body, format="json")
    assert_error(response, 400, path="/logs", fields=[field])
    assert not SystemLog.objects.exists()


@pytest.mark.parametrize("caller", ["anonymous", *REVOKED_CALLERS])  # (revoked: an ADMIN's token)
def test_no_token_or_a_revoked_one_cannot_post_or_read_logs(api_client, revoked_client_for, caller):
    client = api_client if caller == "anonymous" else revoked_client_for(caller)
    SystemLog.objects.all().delete()  # (a password change logs itself)
    assert_error(client.post("/logs", SEED_ENTRY, format="json"), 401, path="/logs")
    assert_error(client.get("/logs"), 401, path="/logs")
    assert not SystemLog.objects.exists()


@pytest.mark.parametrize("role, status", [("USER", 403), ("EVENT_ORGANIZER", 403),
                                          ("IT_OPERATOR", 200), ("ADMIN", 200), ("USER+IT_OPERATOR", 200),
                                          ("EVENT_ORGANIZER+IT_OPERATOR", 200)])
def test_only_admin_or_operator_reads_logs(make_user, client_for, role, status):
    response = client_for(make_user(roles=role.split("+"))).get("/logs")
    if status == 200:
        assert response.status_code == 200
        assert set(response.json()) == {"logs", "total", "page", "pageSize"}
    else:
        assert_error(response, status, path="/logs")


# --- GET: filters, order, paging ------------------------------------------------------------------


def test_list_is_newest_first_with_seed_body(operator):
    old, new, middle = add_log(0), add_log(20), add_log(10)
    body = operator.get("/logs").json()
    assert [e["id"] for e in body["logs"]] == [str(new.pk), str(middle.pk), str(old.pk)]
    assert body["total"] == 3 and body["page"] == 1 and body["pageSize"] == 10
    assert body["logs"][0]["timestamp"] == "2024-08-12T10:20:00Z"


def test_seed_query_filters_by_time_type_and_severity(operator):
    wanted = add_log(15, event_type="AUTH", severity="error", user_id="u1")
    add_log(15, event_type="AUTH", severity="info")
    add_log(15, event_type="PAYMENT", severity="error")
    add_log(-60 * 11, event_type="AUTH", severity="error")  # the day before, 23:00
    add_log(60 * 14, event_type="AUTH", severity="error")  # the next day
    response = operator.get("/logs", {"from": "2024-08-12T00:00:00Z", "to": "2024-08-12T23:59:59Z",
                                      "eventType": "AUTH", "severity": "error"})
    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["logs"]] == [str(wanted.pk)] and body["total"] == 1


def test_from_and_to_are_inclusive_and_accept_offsets(operator):
    first, second, third = add_log(0), add_log(10), add_log(20)
    ids = lambda **q: [e["id"] for e in operator.get("/logs", q).json()["logs"]]  # noqa: E731
    assert ids(**{"from": "2024-08-12T10:10:00Z"}) == [str(third.pk), str(second.pk)]
    assert ids(to="2024-08-12T10:10:00Z") == [str(second.pk), str(first.pk)]
    assert ids(**{"from": "2024-08-12T12:10:00+02:00", "to": "2024-08-12T12:10:00+02:00"}) == [str(second.pk)]


def test_bare_dates_bound_whole_days(operator):
    """`to=2024-08-12` includes that day (as the revenue report's dates do), not just its midnight."""
    before, during, after = add_log(-60 * 11), add_log(15), add_log(60 * 14)  # the 11th 23:00, the 12th, the 13th
    body = operator.get("/logs", {"from": "2024-08-12", "to": "2024-08-12"}).json()
    assert [e["id"] for e in body["logs"]] == [str(during.pk)]
    assert operator.get("/logs", {"to": "9999-12-31"}).json()["total"] == 3
    assert {str(before.pk), str(after.pk)} <= {e["id"] for e in operator.get("/logs", {"from": "2024-08-11"}).json()["logs"]}


def test_a_to_written_to_the_second_or_minute_includes_all_of_it(operator):
    """The seed's day query (`to=2024-08-12T23:59:59Z`) includes the entries of that day's last
    second, which carry a fraction (23:59:59.5); a bound written to the minute includes that
    minute, as a bare date includes its day. A `to` with a fraction is exact."""
    last_second, next_day = add_log(13 * 60 + 59 + 59.5 / 60), add_log(14 * 60)  # 23:59:59.5, the 13th 00:00
    ids = lambda **q: [e["id"] for e in operator.get("/logs", q).json()["logs"]]  # noqa: E731
    assert SystemLog.objects.get(pk=last_second.pk).timestamp == datetime(2024, 8, 12, 23, 59, 59, 500000, tzinfo=timezone.utc)
    assert ids(**{"from": "2024-08-12T00:00:00Z", "to": "2024-08-12T23:59:59Z"}) == [str(last_second.pk)]
    assert ids(**{"from": "2024-08-12T00:00:00Z", "to": "2024-08-13T01:44:59+01:45"}) == [str(last_second.pk)]
    assert ids(to="2024-08-12T23:59Z") == ids(to="2024-08-12T23:59:59") == [str(last_second.pk)]
    assert ids(to="2024-08-12T23:59:59.4Z") == ids(to="2024-08-12T23:58:59Z") == []
    assert ids(to="2024-08-12T23:59:59.5Z") == [str(last_second.pk)]
    assert ids(to="2024-08-13T00:00:00Z") == [str(next_day.pk), str(last_second.pk)]
    assert operator.get("/logs", {"to": "9999-12-31T23:59:59Z"}).json()["total"] == 2
    for last in ("9999-12-31T23:59Z", "9999-12-31T23:59-00:00:30"):  # (the minute ends past 9999 in UTC)
        assert operator.get("/jobs", {"to": last}).status_code == 200


def test_a_time_without_offset_is_utc_as_the_core_api_writes_it(operator, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    add_log(0)
    second = add_log(10)
    written = operator.get("/logs").json()["logs"][0]["timestamp"]  # "2024-08-12T10:10:00Z"
    body = operator.get("/logs", {"from": written.removesuffix("Z"), "to": written.removesuffix("Z")}).json()
    assert [e["id"] for e in body["logs"]] == [str(second.pk)]


def test_filter_by_user_id(operator):
    mine = add_log(0, user_id="42")
    add_log(1, user_id="43")
    add_log(2)
    body = operator.get("/logs", {"userId": "42"}).json()
    assert [e["id"] for e in body["logs"]] == [str(mine.pk)]


@pytest.mark.parametrize("query, field", [
    ({"from": "yesterday"}, "from"),
    ({"to": "2024-13-01T00:00:00Z"}, "to"),
    ({"from": "2024-08-12T12:00:00Z", "to": "2024-08-12T11:00:00Z"}, "to"),
    ({"severity": "fatal"}, "severity"),
    ({"page": "0"}, "page"),
    ({"page": "abc"}, "page"),
    ({"pageSize": "0"}, "pageSize"),
    ({"pageSize": "101"}, "pageSize"),
    ({"pageSize": "abc"}, "pageSize"),
])
def test_invalid_query_is_400(operator, query, field):
    assert_error(operator.get("/logs", query), 400, path="/logs", fields=[field])


def test_paging(operator):
    entries = [add_log(minute) for minute in range(25)]
    newest_first = [str(e.pk) for e in reversed(entries)]

    default = operator.get("/logs").json()
    assert (default["total"], default["page"], default["pageSize"]) == (25, 1, 10)
    assert [e["id"] for e in default["logs"]] == newest_first[:10]

    third = operator.get("/logs", {"page": 3}).json()
    assert [e["id"] for e in third["logs"]] == newest_first[20:]

    beyond = operator.get("/logs", {"page": 4}).json()
    assert beyond["logs"] == [] and beyond["total"] == 25 and beyond["page"] == 4

    largest = operator.get("/logs", {"pageSize": 100}).json()
    assert len(largest["logs"]) == 25 and largest["pageSize"] == 100

    second_of_7 = operator.get("/logs", {"page": 2, "pageSize": 7}).json()
    assert [e["id"] for e in second_of_7["logs"]] == newest_first[7:14]


def test_list_runs_a_fixed_number_of_queries(operator, django_assert_max_num_queries):
    for minute in range(30):
        add_log(minute)
    with django_assert_max_num_queries(6):
        assert len(operator.get("/logs", {"pageSize": 30}).json()["logs"]) == 30


def test_posted_event_is_found_by_its_filters(make_user, client_for, operator):
    client_for(make_user()).post("/logs", SEED_ENTRY, format="json")
    body = operator.get("/logs", {"eventType": "AUTH", "severity": "error",
                                  "userId": SEED_ENTRY["userId"]}).json()
    assert body["total"] == 1
    assert {k: body["logs"][0][k] for k in SEED_ENTRY} == SEED_ENTRY


@pytest.mark.parametrize("bound", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_datetime_beyond_the_storable_range_is_400(operator, bound):
    operator.raise_request_exception = False
    assert_error(operator.get("/logs", {"from": bound}), 400, fields=["from"])


def test_absurd_page_number_is_an_empty_page(operator):
    add_log(0)
    operator.raise_request_exception = False
    response = operator.get("/logs", {"page": "99999999999999999999"})
    assert response.status_code == 200
    assert response.json()["logs"] == [] and response.json()["total"] == 1


def test_a_posted_entry_is_one_line_of_the_process_log(make_user, client_for, caplog):
    forged = "Failed login attempt\n2026-11-21 13:40:00,000 WARNING [0000] ops.events: USER User roles changed"
    response = client_for(make_user()).post("/logs", {"eventType": "AUTH", "severity": "error", "message": forged},
                                            format="json")
    assert response.status_code == 201 and response.json()["message"] == forged  # stored as sent
    [record] = [r for r in caplog.records if r.name == "ops.events"]
    assert "\n" not in record.getMessage() and "attempt\\x0a2026" in record.getMessage()


def test_entries_show_who_sent_them(make_user, client_for, operator):
    customer = make_user()
    client_for(customer).post("/logs", SEED_ENTRY, format="json")
    add_log(0)  # the system's own
    reporters = {e["message"]: e["reportedBy"] for e in operator.get("/logs").json()["logs"]}
    assert reporters == {"Failed login attempt": str(customer.pk), "event at +0m": None}


def test_posting_is_limited_per_account_and_additional_data_by_size(make_user, client_for, settings):
    settings.RATE_LIMIT_LOGS = "3/m"
    first, second = client_for(make_user()), client_for(make_user())
    entry = {"eventType": "APP", "severity": "info", "message": "m"}
    with freeze_time():  # limits count per fixed window: the four requests stay in one
        assert [first.post("/logs", entry, format="json").status_code for _ in range(4)] == [201, 201, 201, 429]
        assert second.post("/logs", entry, format="json").status_code == 201  # another account, same address
    too_big = second.post("/logs", {**entry, "additionalData": {"k": "x" * 17_000}}, format="json")
    assert_error(too_big, 400, fields=["additionalData"])
