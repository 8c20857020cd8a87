"""The Employees group (may chat) and the Admins group (manage users and groups), next to
the audit app's Compliance group."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import ensure_roles


def create_groups(apps, schema_editor):
    for label in ("auth", "accounts", "audit"):
        app_config = apps.get_app_config(label)
        # Migration state's app configs have no models module; create_permissions needs one.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    # Permissions that apps migrated later add to a role (accounts.roles.add_role_permissions)
    # do not exist yet: post_migrate gives them.
    ensure_roles(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), missing_ok=True
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Employees", "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_devices_and_sessions"),
        ("audit", "0002_append_only_and_compliance"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
