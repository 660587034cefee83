# The body is read through ops.models.DocumentBodyField (as bytes on SQLite, decoded leniently).
# Python-side only: the column is unchanged, so no SQL runs (SQLite would otherwise rebuild the
# customer-facing table to alter nothing).

import ops.models
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ops', '0010_document_body_decoder'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='document',
                    name='body',
                    field=ops.models.DocumentBodyField(decoder=ops.models.DocumentBodyDecoder),
                ),
            ],
        ),
    ]
