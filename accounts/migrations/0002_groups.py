"""The Employees group (may chat) and the Admins group (manage users and groups), next to
the audit app's Compliance group."""

from django.db import migrations

from accounts.roles import give_roles_in_migration


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Employees", "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_devices_and_sessions"),
        ("audit", "0002_append_only_and_compliance"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Permissions that apps migrated later add to a role (accounts.roles.add_role_permissions)
    # do not exist yet: those apps' own migrations give them.
    operations = [
        migrations.RunPython(give_roles_in_migration("auth", "accounts", "audit"), remove_groups)
    ]
