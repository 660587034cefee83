# The seed (004, "Notification Orchestration") names the outbox table: `outbox_events`.
# A rename keeps every row and index (named indexes keep their names; PostgreSQL and SQLite move
# indexes and constraints with the table).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0002_jobs_and_reconciliation_changes'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='outboxevent',
            table='outbox_events',
        ),
    ]
