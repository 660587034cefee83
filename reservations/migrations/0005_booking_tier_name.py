"""Each booking keeps the name of the tier it bought (BookingResponse.priceTier), filled in for
existing bookings from their tier; a booking whose tier was already removed stays NULL."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_tier_names(apps, schema_editor):
    Booking = apps.get_model("reservations", "Booking")
    PriceTier = apps.get_model("catalog", "PriceTier")
    (Booking.objects.using(schema_editor.connection.alias).filter(tier__isnull=False)
     .update(tier_name=Subquery(PriceTier.objects.filter(pk=OuterRef("tier_id")).values("name")[:1])))


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0001_initial"),
        ("reservations", "0004_booking_revision"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="tier_name",
            field=models.CharField(blank=True, editable=False, max_length=100, null=True),
        ),
        migrations.RunPython(fill_tier_names, migrations.RunPython.noop, elidable=True),
    ]
