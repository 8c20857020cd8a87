"""Audit events for things Django itself does: logins, and changes to users and groups.

User and group changes are caught at the model layer, so they are recorded whether they
come from the admin, a management command or a shell; the actor is the signed-in user of
the request being served, if any.
"""

from django.contrib.auth import get_user_model, load_backend
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from audit.log import record, record_probe
from audit.models import AuditEvent
from core.network import network_refused

User = get_user_model()

# Fields whose changes are recorded; the password hash is reported as password.changed.
TRACKED_USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
    "password",
)
M2M_OPERATIONS = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}


def _sign_in_source(user) -> str:
    """Which backend accepted ``user``: its ``sign_in_source`` (ldap, oidc), else local."""
    path = getattr(user, "backend", None)
    if not path:
        return "local"
    return getattr(load_backend(path), "sign_in_source", "local")


@receiver(user_logged_in, dispatch_uid="audit_login_success")
def _login_success(sender, request, user, **kwargs):
    record("login.success", actor=user, request=request, target=user, backend=_sign_in_source(user))


@receiver(user_login_failed, dispatch_uid="audit_login_failure")
def _login_failure(sender, credentials, request=None, **kwargs):
    # Only the username tried: Django has already masked anything secret in credentials.
    username = str(credentials.get("username", ""))[:150]
    # A directory backend that refused the attempt says why on the request (accounts.directory).
    failure = getattr(request, "sign_in_failure", None) or {"backend": "local"}
    record(
        "login.failure",
        outcome=AuditEvent.Outcome.FAILURE,
        request=request,
        username_tried=username,
        **failure,
    )


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logout(sender, request, user, **kwargs):
    if user is not None:
        record("logout", actor=user, request=request, target=user)


@receiver(pre_save, sender=User, dispatch_uid="audit_user_before")
def _remember_user(sender, instance, update_fields=None, raw=False, **kwargs):
    if raw or instance.pk is None:
        instance._audit_before = None
        return
    instance._audit_before = (
        sender.objects.filter(pk=instance.pk).values(*TRACKED_USER_FIELDS).first()
    )


@receiver(post_save, sender=User, dispatch_uid="audit_user_saved")
def _user_saved(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    if created:
        record(
            "user.created",
            target=instance,
            username=instance.get_username(),
            is_active=instance.is_active,
            is_staff=instance.is_staff,
            is_superuser=instance.is_superuser,
        )
        return
    before = getattr(instance, "_audit_before", None)
    if before is None:
        return
    changed = [f for f in TRACKED_USER_FIELDS if before[f] != getattr(instance, f)]
    if "password" in changed:
        changed.remove("password")
        record("password.changed", target=instance, username=instance.get_username())
    if "is_active" in changed and not instance.is_active:
        changed.remove("is_active")
        record("user.deactivated", target=instance, username=instance.get_username())
    if changed:
        record(
            "user.changed",
            target=instance,
            username=instance.get_username(),
            fields=changed,
            is_staff=instance.is_staff,
            is_superuser=instance.is_superuser,
            is_active=instance.is_active,
        )


@receiver(post_delete, sender=User, dispatch_uid="audit_user_deleted")
def _user_deleted(sender, instance, **kwargs):
    record(
        "user.deleted",
        target=f"{instance._meta.label_lower}:{instance.pk}",
        username=instance.get_username(),
    )


@receiver(post_save, sender=Group, dispatch_uid="audit_group_saved")
def _group_saved(sender, instance, created, raw=False, **kwargs):
    if not raw:
        record(
            "group.changed",
            target=instance,
            group=instance.name,
            operation="created" if created else "changed",
        )


@receiver(post_delete, sender=Group, dispatch_uid="audit_group_deleted")
def _group_deleted(sender, instance, **kwargs):
    record(
        "group.changed",
        target=f"auth.group:{instance.pk}",
        group=instance.name,
        operation="deleted",
    )


def _names(model, pks) -> list[str]:
    if model is Permission:
        rows = Permission.objects.filter(pk__in=pks).select_related("content_type")
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in rows)
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    return sorted(model.objects.filter(pk__in=pks).values_list(model.USERNAME_FIELD, flat=True))


def _m2m_event(action: str, instance, model, pk_set, operation: str, members_key: str):
    record(
        action,
        target=instance,
        operation=operation,
        **{members_key: _names(model, pk_set or [])},
    )


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_user_groups")
def _user_groups(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action in M2M_OPERATIONS:
        key = "users" if reverse else "groups"
        _m2m_event("group.changed", instance, model, pk_set, M2M_OPERATIONS[action], key)


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit_user_perms")
def _user_permissions(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action in M2M_OPERATIONS:
        key = "users" if reverse else "permissions"
        _m2m_event("permission.changed", instance, model, pk_set, M2M_OPERATIONS[action], key)


@receiver(m2m_changed, sender=Group.permissions.through, dispatch_uid="audit_group_perms")
def _group_permissions(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action in M2M_OPERATIONS:
        key = "groups" if reverse else "permissions"
        _m2m_event("permission.changed", instance, model, pk_set, M2M_OPERATIONS[action], key)


@receiver(network_refused, dispatch_uid="audit_network_refused")
def _network_refused(sender, channel, path, address, peer, request=None, scope=None, **kwargs):
    record_probe(
        "network.refused",
        source=str(address),
        outcome="denied",
        request=request,
        scope=scope,
        channel=channel,
        path=path,
        peer=peer,
    )
