from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, using="default", **kwargs):
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission

    from accounts.roles import ROLES, ensure_roles

    # Other apps' post_migrate handlers may not have created their permissions yet.
    for label in {app for permissions in ROLES.values() for app, _ in permissions}:
        create_permissions(apps.get_app_config(label), verbosity=0, using=using)
    ensure_roles(Group, Permission)


class AccountsConfig(AppConfig):
    """Two-factor login, enrolment, backup codes, lockout and user administration."""

    name = "accounts"

    def ready(self):
        from accounts import receivers  # noqa: F401 (connects the signal receivers)

        post_migrate.connect(_ensure_roles, sender=self, dispatch_uid="accounts_roles")
