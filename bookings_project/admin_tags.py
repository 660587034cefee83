"""Template tags of the project's admin pages (TEMPLATES' `libraries`: `{% load bookings_admin %}`).

`bounded_date_hierarchy` is Django's date hierarchy (the year / month / day links above a
changelist) without its `SELECT DISTINCT` over every row of the list: Django lists the periods
that hold rows by truncating the date of each row (a whole-table scan per page view: 0.3 s on
1,000,000 log entries, 1.1 s with a search, and the same again for the months of a year of them),
where this lists every period between the list's first and last date, from the MIN/MAX Django
reads anyway (an index serves it). A period in between may hold no row (its link shows an empty
list); a list spanning more than MAX_YEARS years (dates typed by hand: an item in year 1) is
still asked for its distinct years, which are then few links rather than thousands.
"""

import datetime

from django import template
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.db import models
from django.utils import timezone

register = template.Library()

MAX_YEARS = 50


class _PeriodsFromRange:
    """A changelist's queryset as Django's date_hierarchy reads it, answering `dates` and
    `datetimes` from the rows' first and last date instead of a DISTINCT over the rows."""

    def __init__(self, queryset):
        self._queryset = queryset
        self._range = None

    def aggregate(self, **aggregates):
        result = self._queryset.aggregate(**aggregates)
        if set(result) == {"first", "last"}:
            self._range = result  # (Django's own MIN/MAX: the periods below reuse it)
        return result

    def _first_last(self, field_name: str) -> tuple:
        if self._range is None:
            self._range = self._queryset.aggregate(first=models.Min(field_name), last=models.Max(field_name))
        first, last = self._range["first"], self._range["last"]
        if first is None or last is None:
            return None, None
        if isinstance(first, datetime.datetime):
            first, last = (timezone.localtime(v).date() if timezone.is_aware(v) else v.date() for v in (first, last))
        return first, last

    def _periods(self, field_name: str, kind: str, fallback) -> list[datetime.date]:
        first, last = self._first_last(field_name)
        if first is None:
            return []
        if kind == "year":
            if last.year - first.year > MAX_YEARS:
                return list(fallback(field_name, kind))
            return [datetime.date(year, 1, 1) for year in range(first.year, last.year + 1)]
        if kind == "month":  # (the list is one year's: the changelist filtered it)
            return [datetime.date(first.year, month, 1) for month in range(first.month, last.month + 1)]
        return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]  # one month's days

    def dates(self, field_name, kind, **kwargs):
        return self._periods(field_name, kind, self._queryset.dates)

    def datetimes(self, field_name, kind, **kwargs):
        return self._periods(field_name, kind, self._queryset.datetimes)


class _ChangeList:
    """The changelist, with its queryset read through _PeriodsFromRange. A searched list's periods
    are those of the list unsearched (and unfiltered, but for the date hierarchy's own year,
    month, day): its first and last row matching a search is a scan of the whole table (2.6 s on
    1,000,000 log entries for a search that matched nothing), the unsearched ones an index lookup."""

    def __init__(self, cl):
        self._cl = cl
        rows = cl.queryset
        if cl.query:
            lookups = [f"{cl.date_hierarchy}__{part}" for part in ("year", "month", "day")]
            rows = cl.root_queryset.filter(**{lookup: cl.params[lookup] for lookup in lookups if lookup in cl.params})
        self.queryset = _PeriodsFromRange(rows)

    def __getattr__(self, name):
        return getattr(self._cl, name)


def bounded_date_hierarchy(cl):
    return date_hierarchy(_ChangeList(cl))


@register.tag(name="bounded_date_hierarchy")
def bounded_date_hierarchy_tag(parser, token):
    return InclusionAdminNode(parser, token, func=bounded_date_hierarchy, template_name="date_hierarchy.html",
                              takes_context=False)
