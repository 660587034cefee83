"""Server-side chart geometry for the admin revenue page (inline SVG, no JavaScript, no CDN)."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from .selectors import DayRevenue, ItemRevenue

CHART_WIDTH = 760
CHART_HEIGHT = 220
AXIS_SPACE = 24


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    bookings: int
    x: float
    y: float
    width: float
    height: float
    percent: float  # of the largest value, for CSS bars


def daily_bars(days: list[DayRevenue], *, start: date, end: date) -> list[Bar]:
    """One bar per day from start to end (days without revenue at zero), scaled to the chart."""
    by_day = {d.day: d for d in days}
    count = (end - start).days + 1
    series = [by_day.get(start + timedelta(days=n)) for n in range(count)]
    values = [d.revenue if d else Decimal("0") for d in series]
    peak = max(values, default=Decimal("0")) or Decimal("1")
    slot = CHART_WIDTH / max(count, 1)
    plot = CHART_HEIGHT - AXIS_SPACE
    bars = []
    for n, (day_revenue, value) in enumerate(zip(series, values)):
        height = float(value / peak) * plot
        bars.append(Bar(label=(start + timedelta(days=n)).isoformat(), value=value,
                        bookings=day_revenue.bookings if day_revenue else 0,
                        x=round(n * slot + slot * 0.1, 2), y=round(plot - height, 2),
                        width=round(max(slot * 0.8, 1), 2), height=round(height, 2),
                        percent=round(float(value / peak) * 100, 1)))
    return bars


def item_bars(details: list[ItemRevenue]) -> list[Bar]:
    """Horizontal CSS bars: width in percent of the best-selling item."""
    peak = max((d.revenue for d in details), default=Decimal("0")) or Decimal("1")
    return [Bar(label=f"#{d.item_id} {d.item_name}", value=d.revenue, bookings=d.bookings, x=0, y=0, width=0,
                height=0, percent=round(float(d.revenue / peak) * 100, 1)) for d in details]
