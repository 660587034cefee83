"""Rebuild the indexes of the case-insensitive unique constraints on SQLite, whose LOWER() is
Python's since bookings_project.sqlite3: keys built with SQLite's own LOWER() (ASCII letters
only) would no longer be found for a name holding an upper-case non-ASCII letter. Nothing to
do on PostgreSQL."""

from django.db import IntegrityError, migrations

INDEXES = ("user_username_ci_unique", "user_email_ci_unique")


def reindex(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for index in INDEXES:
        try:
            schema_editor.execute(f'REINDEX "{index}"')
        except IntegrityError as exc:
            raise IntegrityError(
                f"{index}: two accounts' {index.split('_')[1]}s differ only in the case of non-ASCII letters "
                f"(\"Élodie\" and \"élodie\"), which these constraints now refuse; rename one and migrate again"
            ) from exc


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_user_booking_reminders")]

    operations = [migrations.RunPython(reindex, migrations.RunPython.noop, elidable=True)]
