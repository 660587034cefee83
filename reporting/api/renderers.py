"""`?format=csv` (or `Accept: text/csv`) for the revenue report: DRF picks this renderer by its
`format`, so the URL override works without touching settings."""

import csv
import io
from decimal import Decimal

from bookings_project.content import TextRenderer

CSV_HEADER = ("itemId", "itemName", "itemRevenue", "numberOfBookings")
TOTAL_LABEL = "TOTAL"
# A cell starting with one of these — after any leading whitespace, and in their full-width
# forms too — is read as a formula by some spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _safe_text(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START) else value


def _money(value) -> str:
    return f"{Decimal(str(value)):.2f}"


def revenue_csv(report: dict) -> str:
    """Rows of a serialized RevenueReport, then a total row: empty itemId, itemName "TOTAL",
    the total revenue and the total number of bookings."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    count = 0
    for row in report["reportDetails"]:
        writer.writerow((row["itemId"], _safe_text(row["itemName"]), _money(row["itemRevenue"]),
                         row["numberOfBookings"]))
        count += row["numberOfBookings"]
    writer.writerow(("", TOTAL_LABEL, _money(report["totalRevenue"]), count))
    return out.getvalue()


class RevenueCSVRenderer(TextRenderer):
    media_type = "text/csv"
    format = "csv"
    headers = {"Content-Disposition": 'attachment; filename="revenue-report.csv"'}

    def text(self, data) -> str:
        return revenue_csv(data)
