"""The Admins role's permissions of this app (manage collections and their grants), given once they exist
(accounts.roles.add_role_permissions, in documents.apps)."""

from django.db import migrations

from accounts.roles import give_roles_in_migration


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0002_document_data_keys"),
        ("accounts", "0002_groups"),
    ]

    operations = [
        migrations.RunPython(give_roles_in_migration("documents"), migrations.RunPython.noop)
    ]
