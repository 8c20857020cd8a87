from django.apps import AppConfig
from django.core import checks
from django.db import DatabaseError
from django.db.models.signals import m2m_changed, post_migrate


def _ensure_roles(sender, using="default", **kwargs):
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from accounts.roles import ROLES, ensure_roles

    # Other apps' post_migrate handlers may not have created their permissions yet.
    for label in {app for permissions in ROLES.values() for app, _ in permissions}:
        create_permissions(apps.get_app_config(label), verbosity=0, using=using)
    ensure_roles(Group, Permission)


def roles_as_written(app_configs=None, **kwargs):
    """System check, run before `serve` (and every other management command) starts: the
    role groups get exactly the permissions accounts/roles.py gives them, whatever was done to
    the database by hand since the last migrate. Says so when it had to put them back.

    Nothing happens while the database is not migrated yet (or not reachable): migrate
    creates the groups itself.
    """
    from django.contrib.auth.models import Group, Permission

    from accounts.roles import ensure_roles

    try:
        changed = ensure_roles(Group, Permission)
    except (DatabaseError, Permission.DoesNotExist):
        return []
    if not changed:
        return []
    return [
        checks.Warning(
            "The role groups' permissions differed from accounts/roles.py and were put back.",
            hint="Look in the audit log (permission.changed) for what they had been changed to.",
            id="accounts.W001",
        )
    ]


class AccountsConfig(AppConfig):
    """Two-factor login, enrolment, backup codes, lockout and user administration."""

    name = "accounts"

    def ready(self):
        from django.contrib.auth.models import Group

        from accounts import receivers  # noqa: F401 (connects the signal receivers)
        from accounts.directory import register_metrics
        from accounts.roles import refuse_role_group_changes
        from accounts.your_data import account_section
        from core import personal_data

        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="accounts_roles")
        m2m_changed.connect(
            refuse_role_group_changes,
            sender=Group.permissions.through,
            dispatch_uid="accounts_refuse_role_group_changes",
        )
        checks.register(roles_as_written)
        register_metrics()
        personal_data.register(
            "account",
            "your account: profile, groups, second factors (without their secrets), sessions",
            account_section,
        )
