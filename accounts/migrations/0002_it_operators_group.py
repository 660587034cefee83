"""The "IT operators" group: staff access to the ops admin pages only (contract §3), and
membership for users who already hold IT_OPERATOR. Later role changes keep membership in sync
(accounts.services.user_update). Names are frozen here, as migrations must be."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "IT operators"
PERMISSIONS = (
    "view_systemlog", "view_job", "change_job", "view_outboxevent", "change_outboxevent",
    "view_reconciliationchange",
)


def forwards(apps, schema_editor):
    db = schema_editor.connection.alias
    # Permissions are normally created after all migrations (post_migrate); make sure they exist.
    ops_config = apps.get_app_config("ops")
    ops_config.models_module = True  # the migration state's stub has none; create_permissions needs it
    create_permissions(ops_config, apps=apps, verbosity=0, using=db)

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("accounts", "User")
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    group.permissions.set(Permission.objects.using(db).filter(
        content_type__app_label="ops", codename__in=PERMISSIONS))
    # JSON containment is not portable (SQLite lacks it): filter the roles in Python.
    operators = [pk for pk, roles in User.objects.using(db).values_list("pk", "roles").iterator()
                 if "IT_OPERATOR" in (roles or [])]
    group.user_set.add(*operators)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ops", "0002_jobs_and_reconciliation_changes"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
