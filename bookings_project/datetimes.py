"""Datetime wire formats. Booking API: local time in TIME_ZONE without offset, as the seed
shows ("2025-09-15T10:00:00"); input without offset is read in TIME_ZONE, so a value
round-trips unchanged. Core API: UTC with "Z"."""

import re
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def to_local_naive_iso(value: datetime | None, *, seconds: bool = False) -> str | None:
    """Local time in TIME_ZONE without offset. A fraction of a second is kept (a client's value
    round-trips), unless `seconds`: server-set timestamps are written in whole seconds, as the
    seed shows them (truncated, never rounded up past the moment they record).

    One exception: the second pass through the hour the zone repeats when daylight saving time
    ends is written with its offset (`2026-10-25T02:30:00+01:00`). Without it the value reads
    back as the first pass (local_aware), an hour earlier: sent back unchanged, it would move."""
    if value is None:
        return None
    # The default zone (cached by Django): no per-request zones are activated, and looking the
    # current zone up per value cost 14% of a 1,000-item list (make bench profile).
    local = value.astimezone(timezone.get_default_timezone()) if value.tzinfo is not None else value
    whole = seconds or not local.microsecond
    return (local if local.fold else local.replace(tzinfo=None)).isoformat(
        timespec="seconds" if whole else "microseconds")


def as_utc(value: datetime) -> datetime:
    """An aware datetime as the same instant in UTC (a naive one is left to Django). Services
    compare and subtract times, and Python does both by wall clock between two datetimes of one
    zone (blind to a DST change between them), and never finds a time a zone repeats equal to
    the same instant in another zone (PEP 495): in UTC, instants compare as instants."""
    return value.astimezone(dt_timezone.utc) if value.tzinfo is not None else value


def overlapping(start: datetime | None, end: datetime | None) -> Q:
    """Rows whose [start_time, end_time) overlaps [start, end) — half-open, so back-to-back ranges
    do not; a bound left out (None) is open."""
    q = Q()
    if start is not None:
        q &= Q(end_time__gt=start)
    if end is not None:
        q &= Q(start_time__lt=end)
    return q


def to_utc_z(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}$")
_FINER_THAN_MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d{7}")


def refuse_finer_than_microseconds(value) -> None:
    """Times are kept to the microsecond: a finer fraction would be cut off silently (and no
    longer round-trip), so it is a field error instead."""
    if isinstance(value, str) and _FINER_THAN_MICROSECONDS.search(value):
        raise serializers.ValidationError("At most 6 decimal places of a second (microseconds)", code="precision")


class NonexistentLocalTime(ValueError):
    """A wall-clock time the zone skips (the hour lost when daylight saving time starts)."""


def ensure_storable(value: datetime) -> datetime:
    """The database stores UTC: a value near year 1 or 9999 may not survive the conversion
    (e.g. 9999-12-31T23:00-05:00). Raises ValueError instead of letting the query crash."""
    try:
        value.astimezone(dt_timezone.utc)
    except OverflowError as exc:
        raise ValueError("Datetime out of range") from exc
    return value


def local_aware(value: datetime, zone) -> datetime:
    """A naive `value` as wall-clock time in `zone`. A time the zone repeats (the hour after
    daylight saving time ends) is its first occurrence (fold 0); a time the zone skips raises
    NonexistentLocalTime rather than silently becoming another time (03:30 for 02:30)."""
    aware = value.replace(tzinfo=zone)
    try:
        exists = aware.astimezone(dt_timezone.utc).astimezone(zone).replace(tzinfo=None) == value
    except OverflowError as exc:
        raise ValueError("Datetime out of range") from exc
    if not exists:
        raise NonexistentLocalTime(f"{value.isoformat()} does not exist in {zone} (daylight saving gap)")
    return aware


def local_day_start(day: date, zone=None) -> datetime:
    """The first instant of `day` in `zone` (default: TIME_ZONE), as an aware datetime: its
    midnight (the first pass, when the zone repeats midnight), or — when the zone skips midnight
    (America/Santiago 2026-09-06 begins at 01:00) — the moment the clocks jump, which is what
    fold 0 reads a skipped time as. Never an error: every day has a start."""
    return datetime.combine(day, time.min, tzinfo=zone or timezone.get_current_timezone())


def plus_restored(text: str) -> str:
    """An unencoded "+02:00" in a query string arrives as " 02:00": put the "+" back (only in
    a date-time with a "T", where a space has no other meaning)."""
    return text.replace(" ", "+") if "T" in text and " " in text else text


def parse_api_datetime(raw: str) -> datetime:
    """A core API time: ISO 8601; a value without offset is UTC, the zone the core API writes
    its times in (the booking API's local times are LocalDateTimeField's). Raises ValueError."""
    value = datetime.fromisoformat(plus_restored(raw.strip()))
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt_timezone.utc)
    # In UTC: Python takes offsets up to ±23:59, PostgreSQL only to ±15:59 (a query with
    # `+16:00` failed there with "time zone displacement out of range").
    return ensure_storable(value).astimezone(dt_timezone.utc)


LOCAL_DATETIME_SCHEMA = {
    "type": "string",
    # Written without offset (local time in TIME_ZONE); read with or without one.
    "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$",
    "example": "2025-09-15T10:00:00",
    "description": "ISO 8601 local date-time in the server's TIME_ZONE, written without offset — except "
                   "the second pass through an hour the zone repeats (clocks going back), written with "
                   "its offset so it reads back as the same instant; an offset is accepted on input. "
                   "A bare date on input is the start of that local day (the end of it, for an upper "
                   "bound: `to`, a conflict check's `endTime`).",
}


# DRF's own "invalid" message (the format it names is the one it reads).
LOCAL_FORMAT_HINT = "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]"


@extend_schema_field(LOCAL_DATETIME_SCHEMA)
class LocalDateTimeField(serializers.DateTimeField):
    """Booking API datetime. `seconds=True` for server-set timestamps (createdAt, bookingDate…):
    written in whole seconds; client-supplied values keep their fraction so they round-trip."""

    def __init__(self, *, seconds: bool = False, day_end: bool = False, **kwargs):
        self.seconds = seconds
        self.day_end = day_end
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        refuse_finer_than_microseconds(value)
        if isinstance(value, str):
            if not value.isascii():  # Django's fallback parser reads "２０３１" (\d) as 2031; the core API's does not
                self.fail("invalid", format=LOCAL_FORMAT_HINT)
            value = plus_restored(value.strip())
            if _BARE_DATE.match(value):
                return self.day_bound(value)
        return super().to_internal_value(value)

    def day_bound(self, text: str) -> datetime:
        """A bare date is a local day: its first instant (`local_day_start`; midnight may be
        skipped, and is then not a 400), or with `day_end` (an exclusive upper bound) the first
        instant of the next day, so the day is included — as the core API's `to` and the revenue
        report's dates include theirs. The last day there is has no next one: no bound then."""
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return super().to_internal_value(text)  # not a date (2031-02-30): DRF's message
        if self.day_end:
            if day == date.max:
                return datetime.max.replace(tzinfo=dt_timezone.utc)
            day += timedelta(days=1)
        try:
            return ensure_storable(local_day_start(day, self.default_timezone())).astimezone(dt_timezone.utc)
        except ValueError:
            self.fail("overflow")

    def enforce_timezone(self, value):
        """In UTC: an unambiguous instant (Python compares and subtracts aware datetimes of one
        zone by wall clock, blind to a DST change between them) that the database can store.
        DRF's version reads a local time the zone skips as another time and lets a value near
        year 1 or 9999 overflow (a 500); both are field errors here."""
        try:
            aware = local_aware(value, self.default_timezone()) if timezone.is_naive(value) else value
            return aware.astimezone(dt_timezone.utc)
        except NonexistentLocalTime as exc:
            raise serializers.ValidationError(str(exc), code="nonexistent") from exc
        except (ValueError, OverflowError):
            self.fail("overflow")

    def to_representation(self, value):
        return to_local_naive_iso(value, seconds=self.seconds)


# What a refused core API time is told to look like (DRF's message names the booking API's as a
# pattern; "ISO 8601" alone left the client guessing whether an offset or a fraction is allowed).
UTC_FORMAT_HINT = "ISO 8601, e.g. 2024-08-12T10:15:30Z or 2024-08-12T12:15:30.5+02:00 (without an offset: UTC)"


# The time of day of an ISO 8601 date-time (extended or basic format): hour, minute, second, fraction.
_TIME_OF_DAY = re.compile(r"\d{4}-?\d{2}-?\d{2}[T ](\d{2})(?::?(\d{2}))?(?::?(\d{2}))?([.,]\d+)?")


def written_span(text: str) -> timedelta:
    """How long the unit a date-time is written to lasts: an hour, a minute or a second (one with
    a fraction, or in a form this does not recognise: nothing — it names an exact instant)."""
    match = _TIME_OF_DAY.match(text.strip())
    if match is None or match[4]:
        return timedelta(0)
    return timedelta(seconds=1) if match[3] else timedelta(minutes=1) if match[2] else timedelta(hours=1)


class UtcDateTimeField(serializers.DateTimeField):
    """Core API datetime: ISO 8601 in (without offset: UTC, see parse_api_datetime), UTC with Z out.
    `day_end`: an inclusive upper bound includes all of the unit it is written to — a bare date
    (`to=2024-08-12`) that whole day (UTC), as the revenue report's dates are included; a time
    in whole seconds or minutes (the seed's `to=2024-08-12T23:59:59Z`) that second or minute,
    whose stored times carry fractions (23:59:59.5). Elsewhere a value is its first instant."""

    def __init__(self, *, day_end: bool = False, **kwargs):
        self.day_end = day_end
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format=UTC_FORMAT_HINT)
        refuse_finer_than_microseconds(value)
        try:
            moment = parse_api_datetime(value)
        except ValueError:
            self.fail("invalid", format=UTC_FORMAT_HINT)
        if self.day_end and _BARE_DATE.match(value.strip()):
            moment = datetime.combine(moment.date(), time.max, tzinfo=dt_timezone.utc)
        elif self.day_end and (span := written_span(value)):
            try:  # the unit's last instant; past year 9999 (an offset in seconds) it bounds nothing
                moment += span - timedelta(microseconds=1)
            except OverflowError:
                moment = datetime.max.replace(tzinfo=dt_timezone.utc)
        return moment

    def to_representation(self, value):
        return to_utc_z(value)
