from reservations.models import Booking


class Revenue(Booking):
    """No table: a proxy so the revenue page has a place in the Django admin
    (/admin/reporting/revenue/, listed on the admin index under Reporting)."""

    class Meta:
        proxy = True
        verbose_name = "revenue report"
        verbose_name_plural = "revenue report"
        default_permissions = ("view",)
