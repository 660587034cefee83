"""Formatting the email templates (templates/emails/) share."""

from django import template

from ops.emails import local_time_span

register = template.Library()


@register.simple_tag
def time_span(start, end) -> str:
    """{% time_span startTime endTime %}: the booking's times in TIME_ZONE, the zone named
    (ops.emails.local_time_span); escaped in the HTML part like any value."""
    return local_time_span(start, end)
