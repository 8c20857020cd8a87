"""The Employees group (may chat) and the Admins group (manage users and groups), next to
the audit app's Compliance group."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADMIN_PERMISSIONS = [
    ("auth", "add_user"),
    ("auth", "change_user"),
    ("auth", "view_user"),
    ("auth", "add_group"),
    ("auth", "change_group"),
    ("auth", "view_group"),
    ("auth", "view_permission"),
]


def create_groups(apps, schema_editor):
    for label in ("auth", "accounts"):
        app_config = apps.get_app_config(label)
        # Migration state's app configs have no models module; create_permissions needs one.
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group_model.objects.get_or_create(name="Employees")
    admins, _ = group_model.objects.get_or_create(name="Admins")
    admins.permissions.set(
        [
            permission_model.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in ADMIN_PERMISSIONS
        ]
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Employees", "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_devices_and_sessions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
