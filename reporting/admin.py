"""Admin revenue page (ADMIN only): revenue by item and by day over a date range, with charts
drawn server-side. Same selectors as GET /api/v1/reports/revenue."""

from datetime import date, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from bookings_project.admin import ReadOnlyAdmin

from .api.serializers import RevenueQuerySerializer
from .charts import CHART_HEIGHT, CHART_WIDTH, daily_bars, item_bars
from .models import Revenue
from .selectors import RevenueFilters, revenue_by_day, revenue_by_item

DEFAULT_DAYS = 30
MAX_DAYS = 366


def days_before(day: date, days: int) -> date:
    """`day` minus `days`, or 0001-01-01 if that would be earlier (a 500 otherwise)."""
    return day - timedelta(days=min(days, (day - date.min).days))


def _valid_fields(params) -> dict:
    """The fields of an invalid query that are valid on their own (one bad field does not
    throw away the dates asked for)."""
    data = {}
    for name in RevenueQuerySerializer().fields:
        single = RevenueQuerySerializer(data={name: params[name]} if name in params else {})
        if single.is_valid():
            data.update(single.validated_data)
    return data


def revenue_filters_from(params) -> tuple[RevenueFilters, dict]:
    """Filters from the page's query string (default: the last DEFAULT_DAYS days) and field errors."""
    today = timezone.localdate()
    serializer = RevenueQuerySerializer(data=params)
    data = serializer.validated_data if serializer.is_valid() else _valid_fields(params)
    errors = dict(serializer.errors)
    end = data.get("end_date") or today
    start = data.get("start_date") or days_before(end, DEFAULT_DAYS - 1)
    if start > end:
        errors.setdefault("endDate", ["Must not be before startDate"])
        start = days_before(end, DEFAULT_DAYS - 1)
    if (end - start).days >= MAX_DAYS:
        errors.setdefault("startDate", [f"The range may cover at most {MAX_DAYS} days"])
        start = end - timedelta(days=MAX_DAYS - 1)
    return RevenueFilters(start_date=start, end_date=end, item_id=data.get("item_id")), errors


@admin.register(Revenue)
class RevenueAdmin(ReadOnlyAdmin):
    """Only the report page: no list of bookings, no add/change/delete."""

    def has_module_permission(self, request):
        return request.user.is_active and getattr(request.user, "is_admin", False)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [path("", self.admin_site.admin_view(self.revenue_view), name="%s_%s_changelist" % info)]

    def revenue_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        filters, errors = revenue_filters_from(request.GET)
        report = revenue_by_item(filters=filters)
        days = revenue_by_day(filters=filters)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Revenue report",
            "filters": filters,
            "errors": errors,
            "report": report,
            "item_bars": item_bars(report.details),
            "day_bars": daily_bars(days, start=filters.start_date, end=filters.end_date),
            "chart_width": CHART_WIDTH,
            "chart_height": CHART_HEIGHT,
        }
        return TemplateResponse(request, "admin/reporting/revenue.html", context)
