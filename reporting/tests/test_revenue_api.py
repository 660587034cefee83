"""GET /api/v1/reports/revenue through HTTP: exact sums, statuses, inclusive local dates,
filters, order, CSV, errors, roles and a constant number of queries."""

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from bookings_project.testing import REVOKED_CALLERS
from bookings_project.tests.helpers import queries_during
from catalog.services import item_delete
from reservations.models import Booking
from reservations.services import booking_cancel
from reservations.tests.factories import book

from .. import selectors
from .factories import item_at, local

pytestmark = pytest.mark.django_db
URL = "/api/v1/reports/revenue"


@pytest.fixture
def admin_api(admin, client_for):
    return client_for(admin)


@pytest.fixture
def buyers(make_user):
    return [make_user(username=f"buyer{n}") for n in range(6)]


def priced_item(organizer, day, price, name="Item", capacity=10):
    return item_at(organizer, day, name=name, capacity=capacity, tiers=[("Standard", price, capacity)])


def get_report(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response


def test_three_bookings_at_49_99_sum_to_149_97_as_a_json_number(admin_api, organizer, buyers):
    item = priced_item(organizer, 1, "49.99", name="Spring Boot Workshop")
    for buyer in buyers[:3]:
        book(buyer, item)

    response = get_report(admin_api)

    assert b'"totalRevenue":149.97' in response.content.replace(b" ", b"")
    body = json.loads(response.content, parse_float=Decimal)
    assert body == {"totalRevenue": Decimal("149.97"), "reportDetails": [
        {"itemId": item.pk, "itemName": "Spring Boot Workshop", "itemRevenue": Decimal("149.97"),
         "numberOfBookings": 3}]}


@pytest.mark.parametrize("price", ["4.35", "0.29", "19.99"])
def test_a_price_that_is_no_exact_binary_fraction_is_summed_to_the_cent(admin_api, organizer, buyers, price):
    """4.35 × 100 is 434.99999999999994 in floating point (SQLite's arithmetic on decimals): the
    cents are rounded, never truncated to 434."""
    item = priced_item(organizer, 1, price)
    book(buyers[0], item)

    body = json.loads(get_report(admin_api).content, parse_float=Decimal)

    assert body["totalRevenue"] == body["reportDetails"][0]["itemRevenue"] == Decimal(price)


def test_cancelled_bookings_excluded_completed_included(admin_api, organizer, buyers):
    item = priced_item(organizer, 1, "20.00")
    book(buyers[0], item)
    book(buyers[1], item, status="COMPLETED")
    cancelled = book(buyers[2], item)
    booking_cancel(actor=buyers[2], booking_id=cancelled.pk)

    body = get_report(admin_api).json()

    assert body["totalRevenue"] == 40.0
    assert body["reportDetails"][0]["numberOfBookings"] == 2


def test_pending_bookings_are_not_revenue_yet(admin_api, organizer, buyers):
    """Revenue is CONFIRMED and COMPLETED only: a PENDING booking is not money yet."""
    item = priced_item(organizer, 1, "20.00")
    book(buyers[0], item)
    pending = book(buyers[1], item)
    Booking.objects.filter(pk=pending.pk).update(status="PENDING")  # awaiting confirmation

    body = get_report(admin_api).json()

    assert body["totalRevenue"] == 20.0
    assert body["reportDetails"][0]["numberOfBookings"] == 1

def test_deleted_item_keeps_its_revenue_history(admin_api, organizer, admin, buyers):
    item = priced_item(organizer, 1, "15.50", name="Gone Workshop")
    book(buyers[0], item, status="COMPLETED")
    item_delete(actor=admin, item_id=item.pk)

    body = get_report(admin_api).json()

    assert body["reportDetails"] == [{"itemId": item.pk, "itemName": "Gone Workshop", "itemRevenue": 15.5,
                                      "numberOfBookings": 1}]


def test_date_bounds_are_inclusive_local_days(admin_api, organizer, buyers, settings):
    settings.TIME_ZONE = "America/New_York"  # 23:30 local is the next day in UTC
    item = priced_item(organizer, 1, "10.00")
    book(buyers[0], item, booked_at=local(2030, 2, 28, 23, 59))  # day before: out
    book(buyers[1], item, booked_at=local(2030, 3, 1, 0, 0))     # on startDate: in
    book(buyers[2], item, booked_at=local(2030, 3, 31, 23, 30))  # late on endDate: in
    book(buyers[3], item, booked_at=local(2030, 4, 1, 0, 0))     # day after: out

    body = get_report(admin_api, startDate="2030-03-01", endDate="2030-03-31").json()
    assert body["totalRevenue"] == 20.0 and body["reportDetails"][0]["numberOfBookings"] == 2

    one_day = get_report(admin_api, startDate="2030-03-31", endDate="2030-03-31").json()
    assert one_day["reportDetails"][0]["numberOfBookings"] == 1
    open_start = get_report(admin_api, endDate="2030-03-01").json()
    assert open_start["reportDetails"][0]["numberOfBookings"] == 2
    open_end = get_report(admin_api, startDate="2030-04-01").json()
    assert open_end["reportDetails"][0]["numberOfBookings"] == 1


ZONES = ["America/New_York", "Pacific/Chatham", "Pacific/Kiritimati", "America/St_Johns", "Europe/Berlin"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("first", "last"), [("2030-03-01", "2030-03-31"),
                                             ("2026-03-29", "2026-03-29"),    # Berlin/EU: a 23-hour day
                                             ("2026-10-25", "2026-11-01")])   # 25-hour days (EU, then US)
def test_bookings_at_the_edges_of_the_local_days_count_on_their_local_date(admin_api, organizer, buyers, settings,
                                                                         zone, first, last):
    """00:30 local on the first day and 23:30 on the last count, 23:30 the day before and 00:30
    the day after do not — in zones far from UTC, with half and quarter hours, on days DST makes
    23 or 25 hours long; JSON and CSV alike (on PostgreSQL too: make test-postgres)."""
    settings.TIME_ZONE = zone
    item = priced_item(organizer, 1, "10.00")
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    edges = [(start - timedelta(days=1), 23, 30), (start, 0, 30), (end, 23, 30), (end + timedelta(days=1), 0, 30)]
    for buyer, (day, hour, minute) in zip(buyers, edges):
        book(buyer, item, booked_at=local(day.year, day.month, day.day, hour, minute))

    body = get_report(admin_api, startDate=first, endDate=last).json()
    csv_rows = get_report(admin_api, startDate=first, endDate=last, format="csv").content.decode().splitlines()

    assert body["totalRevenue"] == 20.0 and body["reportDetails"][0]["numberOfBookings"] == 2
    assert csv_rows[-1] == ",TOTAL,20.00,2"
    assert get_report(admin_api, endDate=(start - timedelta(days=1)).isoformat()).json()["totalRevenue"] == 10.0
    assert get_report(admin_api, startDate=(end + timedelta(days=1)).isoformat()).json()["totalRevenue"] == 10.0


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("params", [{"startDate": "0001-01-01"}, {"endDate": "9999-12-31"},
                                    {"startDate": "0001-01-01", "endDate": "9999-12-31"},
                                    {"startDate": "0001-01-01", "endDate": "9999-12-31", "format": "csv"}])
def test_the_first_and_last_dates_bound_nothing(admin_api, organizer, buyers, settings, zone, params):
    settings.TIME_ZONE = zone
    item = priced_item(organizer, 1, "10.00")
    book(buyers[0], item, booked_at=local(2000, 1, 1, 0, 0))
    book(buyers[1], item)

    response = get_report(admin_api, **params)

    if params.get("format") == "csv":
        assert response.content.decode().splitlines()[-1] == ",TOTAL,20.00,2"
    else:
        assert response.json()["totalRevenue"] == 20.0


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_dates_near_the_extremes_still_bound(admin_api, organizer, buyers, settings, zone):
    settings.TIME_ZONE = zone
    book(buyers[0], priced_item(organizer, 1, "10.00"))

    assert get_report(admin_api, endDate="0001-01-02").json()["totalRevenue"] == 0
    assert get_report(admin_api, startDate="9999-12-31").json()["totalRevenue"] == 0
    assert get_report(admin_api, startDate="0001-01-02", endDate="9999-12-30").json()["totalRevenue"] == 10.0


@pytest.mark.parametrize("value", ["2026-03-29T02:30:00", "2026-10-25T02:30:00", "2026-03-29T02:30:00+01:00",
                                   "２０２６-03-29"])
@pytest.mark.parametrize("param", ["startDate", "endDate"])
def test_a_date_time_in_a_date_parameter_is_a_400_field_error(admin_api, settings, param, value):
    """Dates only (a day, not an instant): a Berlin DST gap or repeated time is not a 500 either.
    Nor fullwidth digits, which strptime's \\d read as 2026 (the schema's YYYY-MM-DD is ASCII)."""
    settings.TIME_ZONE = "Europe/Berlin"
    for params in ({param: value}, {param: value, "format": "csv"}):
        response = admin_api.get(URL, params)
        assert response.status_code == 400 and list(response.json()["fields"]) == [param]


def test_a_day_bound_the_database_cannot_store_is_a_400_field_error(admin_api, monkeypatch):
    """No real zone gets here (the first and last days are handled above); still never a 500."""
    before_year_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    monkeypatch.setattr(selectors, "local_day_start", lambda day: before_year_1)

    response = admin_api.get(URL, {"startDate": "2030-01-01", "endDate": "2030-01-31"})

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"startDate", "endDate"}


def test_item_filter(admin_api, organizer, buyers):
    first, second = priced_item(organizer, 1, "10.00"), priced_item(organizer, 2, "25.00")
    book(buyers[0], first)
    book(buyers[0], second)
    book(buyers[1], second)

    body = get_report(admin_api, itemId=second.pk).json()

    assert body["totalRevenue"] == 50.0
    assert [d["itemId"] for d in body["reportDetails"]] == [second.pk]
    assert get_report(admin_api, itemId=999999).json() == {"totalRevenue": 0.0, "reportDetails": []}


def test_details_sorted_by_revenue_descending_ties_by_item_id(admin_api, organizer, buyers):
    low_a = priced_item(organizer, 1, "10.00", name="A")
    top = priced_item(organizer, 2, "30.00", name="Top")
    low_b = priced_item(organizer, 3, "5.00", name="B")
    free = priced_item(organizer, 4, "0.00", name="Free")
    book(buyers[0], low_a)
    book(buyers[0], top)
    book(buyers[0], low_b)
    book(buyers[1], low_b)
    book(buyers[0], free)

    details = get_report(admin_api).json()["reportDetails"]

    assert [(d["itemName"], d["itemRevenue"]) for d in details] == [
        ("Top", 30.0), ("A", 10.0), ("B", 10.0), ("Free", 0.0)]


def test_csv_has_the_same_rows_and_total_as_json(admin_api, organizer, buyers):
    workshop = priced_item(organizer, 1, "49.99", name='Workshop, "advanced"')
    formula = priced_item(organizer, 2, "12.00", name="=HYPERLINK(1)")
    for buyer in buyers[:3]:
        book(buyer, workshop)
    book(buyers[0], formula)

    body = get_report(admin_api).json()
    response = get_report(admin_api, format="csv")

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["itemId", "itemName", "itemRevenue", "numberOfBookings"]
    expected = [[str(d["itemId"]), d["itemName"], f"{Decimal(str(d['itemRevenue'])):.2f}",
                 str(d["numberOfBookings"])] for d in body["reportDetails"]]
    expected[1][1] = "'=HYPERLINK(1)"  # a formula-looking name is neutralised for spreadsheets
    assert rows[1:-1] == expected
    assert rows[-1] == ["", "TOTAL", "161.97", "4"]
    assert body["totalRevenue"] == 161.97

    by_accept = admin_api.get(URL, HTTP_ACCEPT="text/csv")
    assert by_accept.status_code == 200 and by_accept.content == response.content


def test_csv_of_an_empty_report_has_header_and_zero_total(admin_api):
    response = get_report(admin_api, format="csv")
    assert response.content.decode().splitlines() == ["itemId,itemName,itemRevenue,numberOfBookings",
                                                      ",TOTAL,0.00,0"]


@pytest.mark.parametrize("accept", ["application/json", "text/html", "text/plain"])
def test_format_csv_in_the_url_wins_over_the_accept_header(admin_api, accept):
    """Swagger UI and many HTTP libraries send `Accept: application/json` on every request:
    `?format=csv` from them was a 406 "Could not satisfy the request Accept header."."""
    response = admin_api.get(URL, {"format": "csv"}, HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.content.decode().startswith("itemId,itemName,itemRevenue,numberOfBookings")
    as_json = admin_api.get(URL, {"format": "json"}, HTTP_ACCEPT="text/csv")
    assert as_json.status_code == 200 and as_json.json() == {"totalRevenue": 0, "reportDetails": []}


@pytest.mark.parametrize("params, field", [
    ({"startDate": "2030-13-01"}, "startDate"),
    ({"startDate": "01/03/2030"}, "startDate"),
    ({"endDate": "yesterday"}, "endDate"),
    ({"startDate": "2030-03-02", "endDate": "2030-03-01"}, "endDate"),
    ({"itemId": "abc"}, "itemId"),
    ({"itemId": "0"}, "itemId"),
    ({"itemId": "99999999999999999999999"}, "itemId"),
    ({"format": "xml"}, "format"),
    ({"format": ""}, "format"),  # sent empty: not "no format" (the schema's enum is csv, json)
    ({"format": "csv", "itemId": "1.5"}, "itemId"),
])
def test_bad_parameters_are_400_json_with_fields(admin_api, params, field):
    response = admin_api.get(URL, params)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == 400 and field in body["fields"]


@pytest.mark.parametrize("roles, status", [
    (None, 401), (["USER"], 403), (["EVENT_ORGANIZER"], 403), (["IT_OPERATOR"], 403), (["ADMIN"], 200),
    (["USER", "IT_OPERATOR"], 403), (["EVENT_ORGANIZER", "IT_OPERATOR"], 403),
    *((revoked, 401) for revoked in REVOKED_CALLERS),  # an ADMIN's token, revoked since
])
def test_only_admins_see_revenue(caller_client, roles, status):
    client = caller_client(roles)
    for params in ({}, {"format": "csv"}):
        response = client.get(URL, params)
        assert response.status_code == status
        if status != 200:
            assert response.json()["status"] == status


def _queries_for_report(client, organizer, buyers, *, items: int, bookings_per_item: int, first_day: int) -> int:
    for n in range(items):
        item = priced_item(organizer, first_day + n, "9.99", capacity=bookings_per_item)
        for buyer in buyers[:bookings_per_item]:
            book(buyer, item)
    responses = []
    count = queries_during(lambda: responses.extend(client.get(URL, params) for params in ({}, {"format": "csv"})))
    assert [r.status_code for r in responses] == [200, 200]
    assert len(responses[0].json()["reportDetails"]) >= items
    return count


def test_query_count_does_not_grow_with_items_or_bookings(admin_api, organizer, other_organizer, buyers, settings):
    settings.MAX_ACTIVE_BOOKINGS_PER_USER = 100  # a few buyers hold many bookings here
    small = _queries_for_report(admin_api, organizer, buyers, items=3, bookings_per_item=2, first_day=100)
    large = _queries_for_report(admin_api, other_organizer, buyers, items=30, bookings_per_item=5, first_day=200)
    assert small == large <= 6  # two requests (JSON, CSV): the caller and one grouped query each


@pytest.mark.parametrize("name", [" =1+1", "\n=1+1", "\uff1d1+1", "\uff20SUM(A1)", "-2+3", "@SUM(A1)"])
def test_formula_looking_names_are_neutralised_after_whitespace_and_in_full_width(name):
    from reporting.api.renderers import _safe_text

    assert _safe_text(name) == f"'{name}"
    assert _safe_text("Jazz = fun") == "Jazz = fun"


def test_sums_are_exact_to_the_cent_at_the_largest_prices(admin_api, organizer, buyers):
    """Whole cents summed as integers: SQLite would add the decimals as floating point."""
    from decimal import Decimal

    item = priced_item(organizer, 3, "1.00")
    book(buyers[0], item)
    template = Booking.objects.get(item=item)
    Booking.objects.filter(pk=template.pk).update(price_paid=Decimal("0.07"))
    Booking.objects.bulk_create([Booking(user=template.user, item=item, tier=template.tier, status="COMPLETED",
                                         price_paid=Decimal("99999999.99"), start_time=template.start_time,
                                         end_time=template.end_time) for _ in range(20_000)])
    body = admin_api.get(URL).json()
    assert Decimal(str(body["totalRevenue"])) == Decimal("1999999999800.07")


def test_a_total_beyond_a_floats_precision_is_written_exactly(admin_api, monkeypatch):
    """999,999 bookings at the largest price: 16 significant digits, which float() would round
    (…0.01 → …0.02). The database sums exactly (above); this pins the JSON writing of it."""
    huge = Decimal("99999899990000.01")
    report = selectors.RevenueReport(total=huge, bookings=999_999,
                                     details=[selectors.ItemRevenue(7, "Mega \u2028\"quoted\"", huge, 999_999)])
    monkeypatch.setattr(selectors, "revenue_by_item", lambda filters: report)

    response = get_report(admin_api)

    assert b'"totalRevenue":99999899990000.01' in response.content
    body = json.loads(response.content, parse_float=Decimal)
    assert body == {"totalRevenue": huge, "reportDetails": [
        {"itemId": 7, "itemName": "Mega \u2028\"quoted\"", "itemRevenue": huge, "numberOfBookings": 999_999}]}
    assert b"\\u2028" in response.content  # escaped as DRF's renderer does (JavaScript-safe)


@pytest.mark.parametrize("query, accept", [("?format=csv", None), ("", "text/csv"), ("", None)])
def test_options_answers_the_metadata_in_json_whatever_the_format_asked(admin_api, query, accept):
    """(The CSV renderer was handed DRF's metadata dict: a 500, KeyError 'reportDetails'.)"""
    response = admin_api.options(f"/api/v1/reports/revenue{query}", **({"HTTP_ACCEPT": accept} if accept else {}))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json()["renders"] == ["application/json", "text/csv"]
