# The body is read with a decoder that survives JSON nested deeper than Python's parser goes
# (ops.models.DocumentBodyDecoder). Python-side only: the column is unchanged, so no SQL runs
# (SQLite would otherwise rebuild the customer-facing table to alter nothing).

import ops.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0009_job_whole_recon_done'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='document',
                    name='body',
                    field=models.JSONField(decoder=ops.models.DocumentBodyDecoder),
                ),
            ],
        ),
    ]
