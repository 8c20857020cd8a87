"""The Admins role's permissions of this app (list and revoke tokens, see usage), given once they exist
(accounts.roles.add_role_permissions, in api.apps)."""

from django.db import migrations

from accounts.roles import give_roles_in_migration


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_tokens_and_usage"),
        ("accounts", "0002_groups"),
    ]

    operations = [migrations.RunPython(give_roles_in_migration("api"), migrations.RunPython.noop)]
