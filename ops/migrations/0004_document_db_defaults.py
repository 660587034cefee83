# The documents table is written directly by the customer side too: `version` and `updated_at`
# get database defaults so an INSERT of entity_type, entity_id and body alone is valid.

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0003_outbox_events_table'),
    ]

    operations = [
        migrations.AlterField(
            model_name='document',
            name='updated_at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name='document',
            name='version',
            field=models.IntegerField(db_default=1, default=1),
        ),
    ]
