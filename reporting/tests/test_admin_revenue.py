"""The admin revenue page: ADMIN only, chart drawn server-side, same numbers as the API."""

import re

import pytest

from reservations.tests.factories import book

from .factories import item_at, local

pytestmark = pytest.mark.django_db
PAGE = "/admin/reporting/revenue/"


@pytest.fixture
def sales(organizer, make_user):
    item = item_at(organizer, 1, name="Spring Boot Workshop", tiers=[("Standard", "49.99", 10)])
    other = item_at(organizer, 2, name="Yoga", tiers=[("Standard", "10.00", 10)])
    for n in range(3):
        book(make_user(), item, booked_at=local(2030, 3, 1 + n, 12))
    book(make_user(), other, booked_at=local(2030, 3, 2, 9))
    return item, other


def test_admin_sees_revenue_by_item_and_by_day_with_an_inline_chart(client, admin, sales):
    client.force_login(admin)

    response = client.get(PAGE, {"startDate": "2030-03-01", "endDate": "2030-03-05"})

    assert response.status_code == 200
    html = response.content.decode()
    assert '<strong id="revenue-total">159.97</strong>' in html
    assert "Spring Boot Workshop" in html and "Yoga" in html
    chart = re.search(r'<svg[^>]*id="revenue-by-day".*?</svg>', html, re.S).group(0)
    assert chart.count("<rect") == 5  # one bar per day, empty days included
    assert "2030-03-02: 59.99 (2 bookings)" in chart
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from another host (no CDN)
    assert 'style="width: 100.0%"' in html  # the top item's CSS bar


@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Chatham", "Pacific/Kiritimati", "America/St_Johns",
                                  "Europe/Berlin"])
def test_each_booking_is_drawn_on_its_local_day(client, admin, organizer, make_user, settings, zone):
    """The day bars group by the local date (TruncDate in TIME_ZONE, on SQLite and PostgreSQL):
    00:30 on the first day and 23:30 on the last are those days' bars, not their UTC
    neighbours' — nor left out of the chart while counted in the total. 2026-03-29 is 23 hours
    long in Berlin."""
    settings.TIME_ZONE = zone
    item = item_at(organizer, 1, name="Late show", tiers=[("Standard", "10.00", 10)])
    book(make_user(), item, booked_at=local(2026, 3, 27, 0, 30))
    book(make_user(), item, booked_at=local(2026, 3, 29, 23, 30))
    book(make_user(), item, booked_at=local(2026, 3, 29, 23, 45))
    client.force_login(admin)

    html = client.get(PAGE, {"startDate": "2026-03-27", "endDate": "2026-03-29"}).content.decode()

    assert '<strong id="revenue-total">30.00</strong>' in html
    chart = re.search(r'<svg[^>]*id="revenue-by-day".*?</svg>', html, re.S).group(0)
    assert "2026-03-27: 10.00 (1 booking" in chart
    assert "2026-03-28: 0" in chart
    assert "2026-03-29: 20.00 (2 bookings)" in chart


def test_revenue_page_is_linked_from_the_admin_index(client, admin):
    client.force_login(admin)
    assert PAGE in client.get("/admin/").content.decode()


def test_bad_dates_show_an_error_not_a_crash(client, admin):
    client.force_login(admin)
    response = client.get(PAGE, {"startDate": "2030-02-30", "endDate": "2030-01-01"})
    assert response.status_code == 200
    assert "startDate" in response.content.decode()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize("params", [{"endDate": "0001-01-05"}, {"startDate": "0001-01-01", "endDate": "0001-01-31"},
                                    {"endDate": "9999-12-31"}, {"startDate": "9999-12-31"},
                                    {"startDate": "9999-12-31", "endDate": "0001-01-03"}])
def test_the_first_and_last_dates_are_not_a_crash(client, admin, settings, zone, params):
    settings.TIME_ZONE = zone
    client.force_login(admin)
    response = client.get(PAGE, params)
    assert response.status_code == 200
    assert 'id="revenue-by-day"' in response.content.decode()


@pytest.mark.parametrize("roles", [["IT_OPERATOR"], ["USER"], ["EVENT_ORGANIZER"]])
def test_other_roles_do_not_get_the_page(client, make_user, roles):
    user = make_user(roles=roles)
    client.force_login(user)

    response = client.get(PAGE)

    assert response.status_code in (302, 403)
    assert b"revenue-by-day" not in response.content
    if user.is_staff:
        assert response.status_code == 403
        assert PAGE not in client.get("/admin/").content.decode()


def test_one_bad_field_keeps_the_dates_asked_for():
    from datetime import date

    from reporting.admin import revenue_filters_from

    filters, errors = revenue_filters_from({"startDate": "2030-03-01", "endDate": "2030-03-05", "itemId": "abc"})
    assert (filters.start_date, filters.end_date, filters.item_id) == (date(2030, 3, 1), date(2030, 3, 5), None)
    assert set(errors) == {"itemId"}
