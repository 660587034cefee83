"""PostgreSQL backstop: one user never holds two overlapping CONFIRMED bookings, whatever
the application does. Half-open ranges `[start, end)`, so back-to-back bookings pass.
SQLite has no exclusion constraints; there the locked check in booking_create is the guard."""

from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations

CONSTRAINT = "booking_user_confirmed_no_overlap"


def add_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"ALTER TABLE reservations_booking ADD CONSTRAINT {CONSTRAINT} EXCLUDE USING gist ("
        " user_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&"
        ") WHERE (status = 'CONFIRMED')"
    )


def drop_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE reservations_booking DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("reservations", "0001_initial")]

    operations = [
        BtreeGistExtension(),
        migrations.RunPython(add_exclusion, drop_exclusion, elidable=False),
    ]
