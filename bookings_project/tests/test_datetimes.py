"""Booking API datetimes (bookings_project/datetimes.py): a value without offset is wall-clock
time in TIME_ZONE and round-trips unchanged; what cannot (a local time the zone skips, a value
the database cannot store in UTC) is a 400 field error, never a silent shift or a 500."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone
from rest_framework import serializers

from bookings_project.datetimes import LocalDateTimeField, UtcDateTimeField
from catalog.models import BookableItem
from catalog.tests.factories import make_item
from reservations.models import Booking
from reservations.services import booking_create

from .helpers import assert_error

BERLIN_GAP = "2031-03-30T02:30:00"   # clocks jump 02:00 → 03:00
BERLIN_FOLD = "2031-10-26T02:30:00"  # clocks go back 03:00 → 02:00: 02:30 happens twice


def read(raw: str) -> datetime:
    return LocalDateTimeField().run_validation(raw)


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"


class TestField:
    @pytest.mark.parametrize(("zone", "raw"), [
        ("Europe/Berlin", "0001-01-01T00:00:00"),        # 0000-12-31 in UTC
        ("America/New_York", "9999-12-31T23:00:00"),     # year 10000 in UTC
        ("UTC", "9999-12-31T23:00:00-05:00"),
        ("UTC", "0001-01-01T00:00:00+01:00"),
    ])
    def test_a_value_the_database_cannot_store_is_a_field_error(self, settings, zone, raw):
        settings.TIME_ZONE = zone
        with pytest.raises(serializers.ValidationError, match="out of range"):
            read(raw)

    @pytest.mark.parametrize(("zone", "raw"), [
        ("Europe/Berlin", "0001-01-01T01:00:00"), ("America/New_York", "9999-12-31T18:00:00"),
        ("UTC", "0001-01-01T00:00:00"), ("UTC", "9999-12-31T23:59:59.999999"),
    ])
    def test_the_extremes_that_fit_are_accepted_and_round_trip(self, settings, zone, raw):
        settings.TIME_ZONE = zone
        field = LocalDateTimeField()
        assert field.to_representation(field.run_validation(raw)) == raw

    def test_a_local_time_in_the_daylight_saving_gap_is_refused(self, berlin):
        with pytest.raises(serializers.ValidationError) as error:
            read(BERLIN_GAP)
        assert "2031-03-30T02:30:00 does not exist in Europe/Berlin (daylight saving gap)" in str(error.value)

    def test_the_same_instant_with_an_offset_is_fine(self, berlin):
        assert read("2031-03-30T02:30:00+01:00") == datetime(2031, 3, 30, 1, 30, tzinfo=dt_timezone.utc)

    def test_an_ambiguous_local_time_is_its_first_occurrence(self, berlin):
        value = read(BERLIN_FOLD)
        assert value == datetime(2031, 10, 26, 0, 30, tzinfo=dt_timezone.utc)  # still summer time (+02:00)
        assert LocalDateTimeField().to_representation(value) == BERLIN_FOLD

    def test_the_second_pass_through_a_repeated_hour_is_written_with_its_offset(self, berlin):
        """Written without it, it would read back as the first pass, an hour earlier."""
        second = datetime(2031, 10, 26, 1, 30, tzinfo=dt_timezone.utc)  # 02:30 again, now +01:00
        written = LocalDateTimeField().to_representation(second)
        assert written == "2031-10-26T02:30:00+01:00"
        assert read(written) == second
        assert LocalDateTimeField().to_representation(second.replace(hour=0)) == BERLIN_FOLD  # the first: plain

    @pytest.mark.parametrize(("zone", "raw", "day_end", "expected"), [
        ("Pacific/Chatham", "2031-09-15", False, datetime(2031, 9, 14, 11, 15, tzinfo=dt_timezone.utc)),  # +12:45
        ("Pacific/Chatham", "2031-09-15", True, datetime(2031, 9, 15, 11, 15, tzinfo=dt_timezone.utc)),
        ("America/St_Johns", "2031-09-15", True, datetime(2031, 9, 16, 2, 30, tzinfo=dt_timezone.utc)),  # -2:30
        ("Europe/Berlin", "2031-03-30", True, datetime(2031, 3, 30, 22, 0, tzinfo=dt_timezone.utc)),  # 23 hours
        ("America/Santiago", "2026-09-06", False, datetime(2026, 9, 6, 4, 0, tzinfo=dt_timezone.utc)),  # 01:00 -03
        ("America/Havana", "2026-11-01", False, datetime(2026, 11, 1, 4, 0, tzinfo=dt_timezone.utc)),  # first 00:00
        ("Pacific/Kiritimati", "9999-12-31", True, datetime.max.replace(tzinfo=dt_timezone.utc)),  # no next day
    ])
    def test_a_bare_date_is_the_start_of_that_local_day_or_with_day_end_its_end(self, settings, zone, raw,
                                                                                day_end, expected):
        settings.TIME_ZONE = zone
        assert LocalDateTimeField(day_end=day_end).run_validation(raw) == expected

    def test_a_bare_date_the_database_cannot_store_or_that_does_not_exist_is_a_field_error(self, berlin):
        with pytest.raises(serializers.ValidationError, match="out of range"):
            read("0001-01-01")  # its midnight is in year 0 in UTC
        with pytest.raises(serializers.ValidationError, match="wrong format"):
            read("2031-02-30")

    @pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham"])
    def test_server_set_timestamps_are_whole_seconds_client_values_keep_their_fraction(self, settings, zone):
        settings.TIME_ZONE = zone
        value = timezone.make_aware(datetime(2025, 7, 13, 12, 0, 0, 999999))  # 12:00 local
        assert LocalDateTimeField(seconds=True).to_representation(value) == "2025-07-13T12:00:00"  # truncated
        assert LocalDateTimeField().to_representation(value) == "2025-07-13T12:00:00.999999"
        assert LocalDateTimeField(seconds=True).to_representation(value.replace(microsecond=0)) == \
            "2025-07-13T12:00:00"


@pytest.mark.django_db
class TestApi:  # the item routes' cases: catalog/tests/test_api.py
    @staticmethod
    def item(**times) -> dict:
        return {"name": "Workshop", "capacity": 5, **times}

    @pytest.mark.parametrize(("zone", "start", "end", "field"), [
        ("Europe/Berlin", "0001-01-01T00:00:00", "2031-01-01T00:00:00", "startTime"),
        ("America/New_York", "2031-01-01T00:00:00", "9999-12-31T23:00:00", "endTime"),
        ("Europe/Berlin", BERLIN_GAP, "2031-04-01T00:00:00", "startTime"),
    ])
    def test_conflict_window_the_zone_cannot_store_or_skips_is_400(self, make_user, client_for, settings,
                                                                    zone, start, end, field):
        settings.TIME_ZONE = zone
        response = client_for(make_user()).get(f"/api/v1/users/me/conflicts?startTime={start}&endTime={end}")
        assert_error(response, 400, fields=[field])

    @pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/St_Johns"])
    def test_a_conflict_check_for_bare_dates_covers_those_whole_days(self, make_user, client_for, organizer,
                                                                      settings, zone):
        """`endTime=2031-09-15` is the end of that day (it was its midnight: `startTime` and
        `endTime` of one day were a 400, "Must be after startTime")."""
        settings.TIME_ZONE = zone
        user = make_user()
        late = booking_create(user=user, item_id=make_item(
            organizer, start=timezone.make_aware(datetime(2031, 9, 15, 23, 0))).pk)  # 23:00 – 01:00
        response = client_for(user).get("/api/v1/users/me/conflicts?startTime=2031-09-15&endTime=2031-09-15")
        assert response.status_code == 200, response.content
        assert [b["id"] for b in response.json()["conflictingBookings"]] == [late.pk]
        after = client_for(user).get("/api/v1/users/me/conflicts?startTime=2031-09-16T01:00:00&endTime=2031-09-16")
        assert after.json()["hasConflict"] is False

    def test_an_item_in_the_daylight_saving_gap_is_400_not_moved(self, client_for, organizer, berlin):
        response = client_for(organizer).post("/api/v1/items", self.item(
            startTime=BERLIN_GAP, endTime="2031-03-30T05:00:00"), format="json")
        body = assert_error(response, 400, fields=["startTime"])
        assert body["fields"]["startTime"] == [
            "2031-03-30T02:30:00 does not exist in Europe/Berlin (daylight saving gap)"]
        assert not BookableItem.objects.exists()

    def test_an_item_at_an_ambiguous_time_round_trips(self, client_for, organizer, berlin):
        response = client_for(organizer).post("/api/v1/items", self.item(
            startTime=BERLIN_FOLD, endTime="2031-10-26T04:00:00"), format="json")
        assert response.status_code == 201, response.content
        assert (response.json()["startTime"], response.json()["endTime"]) == (BERLIN_FOLD, "2031-10-26T04:00:00")
        stored = BookableItem.objects.get()
        assert stored.start_time == datetime(2031, 10, 26, 0, 30, tzinfo=dt_timezone.utc)  # first 02:30
        assert stored.end_time - stored.start_time == timedelta(hours=2, minutes=30)

    @pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
    def test_booking_date_is_written_in_whole_seconds(self, make_user, client_for, organizer, settings, zone):
        settings.TIME_ZONE = zone
        user = make_user()
        booking = booking_create(user=user, item_id=make_item(organizer).pk)
        Booking.objects.filter(pk=booking.pk).update(
            booking_date=datetime(2025, 7, 13, 13, 30, 0, 136982, tzinfo=dt_timezone.utc))
        [body] = client_for(user).get("/api/v1/bookings/me").json()
        assert body["bookingDate"] == ("2025-07-13T13:30:00" if zone == "UTC" else "2025-07-13T15:30:00")


@pytest.mark.parametrize("field", [LocalDateTimeField, UtcDateTimeField])
def test_a_fraction_finer_than_microseconds_is_refused_not_cut(field, settings):
    settings.TIME_ZONE = "UTC"  # so the value without offset is the same instant on both APIs
    assert field().run_validation("2031-01-01T10:00:00.123456") == field().run_validation("2031-01-01T10:00:00.123456Z")
    with pytest.raises(serializers.ValidationError, match="At most 6 decimal places"):
        field().run_validation("2031-01-01T10:00:00.123456789")


@pytest.mark.parametrize("raw", ["２０３１-09-15T10:00:00", "2031-09-15T1０:00:00", "٢٠٣١-09-15T10:00:00"])
@pytest.mark.parametrize("field", [LocalDateTimeField, UtcDateTimeField])
def test_digits_are_ascii_digits(field, raw):
    """The schema's `\\d` is [0-9]: Django's fallback parser read fullwidth or Arabic-Indic digits
    as 2031 in the booking API (the core API's parser never did)."""
    with pytest.raises(serializers.ValidationError, match="wrong format"):
        field().run_validation(raw)


@pytest.mark.django_db
def test_a_time_in_other_digits_is_a_400_field_error(client_for, organizer):
    body = {"name": "W", "startTime": "２０３１-09-15T10:00:00", "endTime": "2031-09-15T12:00:00", "capacity": 1}
    assert_error(client_for(organizer).post("/api/v1/items", body, format="json"), 400, fields=["startTime"])
    assert_error(client_for().get("/api/v1/items", {"from": "２０３１-09-15T10:00:00"}), 400, fields=["from"])


def test_an_unencoded_plus_in_an_offset_is_read_as_the_plus_it_was():
    """In a query string "+02:00" arrives as " 02:00" unless the client encoded it (both APIs)."""
    expected = datetime(2031, 1, 1, 8, 0, tzinfo=dt_timezone.utc)
    assert LocalDateTimeField().run_validation("2031-01-01T10:00:00 02:00") == expected
    assert UtcDateTimeField().run_validation("2031-01-01T10:00:00 02:00") == expected


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/jobs", "/logs", "/reconciliation/jobs"])
def test_an_offset_postgresql_cannot_hold_is_read_as_its_utc_instant(path, make_user, client_for):
    """Python takes offsets up to ±23:59, PostgreSQL only to ±15:59: `+16:00` in a filter was a
    500 there ("time zone displacement out of range"). The value is the same instant in UTC."""
    assert UtcDateTimeField().run_validation("2024-01-01T00:00:00+16:00") == datetime(
        2023, 12, 31, 8, 0, tzinfo=dt_timezone.utc)
    operator = client_for(make_user(roles=["IT_OPERATOR"]))
    for bound in ("from", "to"):
        assert operator.get(path, {bound: "2024-01-01T00:00:00+16:00"}).status_code == 200
        assert operator.get(path, {bound: "2024-01-01T00:00:00-23:59"}).status_code == 200
