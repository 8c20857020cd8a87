"""The groups that give people their role, what each may do, and who may manage whom.

Role groups are created by data migrations and given exactly their permissions again after
every migrate (post_migrate) and at start-up (a system check), so that a database flushed by
tests, restored without them or edited by hand has them as written here. Their permissions
cannot be changed any other way: ``refuse_role_group_changes`` undoes such a change and
records group.change_refused.

``ROLES`` names permissions of accounts and the apps below it. An app above (api,
documents) adds its own to a role from its ``AppConfig.ready`` with
``add_role_permissions``: this module cannot name them, and the data migration that creates
the groups runs before those apps' tables and permissions exist. That migration gives what
already exists; each such app's own migration (``give_roles_in_migration``) gives its
permissions once they exist, and post_migrate checks that the set is complete.

``may_manage`` is the one rule for the admin: a non-superuser may only manage accounts whose
rights are a subset of their own.
"""

import contextlib
import contextvars
import logging

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from audit.access import READERS_GROUP
from audit.log import record

logger = logging.getLogger(__name__)

EMPLOYEES = "Employees"
ADMINS = "Admins"
COMPLIANCE = READERS_GROUP

ROLES = {
    # May chat.
    EMPLOYEES: [],
    # Manage users and groups (with the is_staff flag that createuser --admin sets).
    ADMINS: [
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "view_user"),
        ("auth", "add_group"),
        ("auth", "change_group"),
        ("auth", "view_group"),
        ("auth", "view_permission"),
    ],
    # Read the audit log, nothing else (reading needs the membership itself, see audit.access).
    COMPLIANCE: [("audit", "view_auditevent")],
}


def membership_rights() -> dict[str, str]:
    """Groups whose membership is a right in itself, beyond their permissions: Compliance
    (reads the audit log, asks for supervised access) and the group that approves
    supervised access (named by a setting). Only a superuser gives them."""
    return {
        COMPLIANCE: "member of Compliance",
        settings.SUPERVISED_ACCESS_APPROVERS: "approves supervised access",
    }


_ensuring_roles = contextvars.ContextVar("ensuring_roles", default=False)


@contextlib.contextmanager
def _allowed_to_change_roles():
    token = _ensuring_roles.set(True)
    try:
        yield
    finally:
        _ensuring_roles.reset(token)


def add_role_permissions(role: str, permissions) -> None:
    """Give the role group ``role`` the permissions ``permissions`` ((app label, codename)
    pairs) too. For apps above accounts, from their ``AppConfig.ready``; the next migrate
    (and the start-up check) applies them."""
    if role not in ROLES:
        raise ValueError(f"{role!r} is not a role group; the roles are {', '.join(ROLES)}.")
    for permission in permissions:
        if permission not in ROLES[role]:
            ROLES[role].append(tuple(permission))


def _wanted(permission_model, permissions, *, missing_ok: bool) -> set[int]:
    wanted = set()
    for app, codename in permissions:
        try:
            found = permission_model.objects.get(content_type__app_label=app, codename=codename)
        except permission_model.DoesNotExist:
            if missing_ok:
                continue
            raise
        wanted.add(found.pk)
    return wanted


def ensure_roles(group_model, permission_model, *, missing_ok: bool = False) -> bool:
    """Create missing role groups and give each exactly its permissions; returns whether
    anything had to change. Permission.DoesNotExist for a permission not created yet, unless
    ``missing_ok`` (the data migration, which runs before the apps that add permissions to
    roles are migrated: it gives what exists, and post_migrate the rest)."""
    changed = False
    with _allowed_to_change_roles():
        for name, permissions in ROLES.items():
            group, created = group_model.objects.get_or_create(name=name)
            wanted = _wanted(permission_model, permissions, missing_ok=missing_ok)
            if created or set(group.permissions.values_list("pk", flat=True)) != wanted:
                group.permissions.set(wanted)
                changed = True
    return changed


def give_roles_in_migration(*app_labels: str):
    """A RunPython function that creates the permissions of ``app_labels`` (Django makes them
    only after migrate) and gives the role groups every permission of theirs that exists by
    then. accounts' data migration runs it for the apps below, and an app above that adds
    permissions to a role (``add_role_permissions``) runs it in a migration of its own, so a
    migrated database has the roles complete before post_migrate looks (which then changes
    nothing, and records nothing)."""

    def give(apps, schema_editor):
        for label in app_labels:
            app_config = apps.get_app_config(label)
            # Migration state's app configs have no models module; create_permissions needs one.
            app_config.models_module = True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = None
        ensure_roles(
            apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), missing_ok=True
        )

    return give


def may_chat(user) -> bool:
    """Whether ``user`` may use the chat: members of Employees (and superusers)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.groups.filter(name=EMPLOYEES).exists())
    )


# --- Who may manage whom ---------------------------------------------------------------------


def _permission_names(permissions) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in permissions.values_list("content_type__app_label", "codename")
    }


def group_rights(group) -> frozenset[str]:
    """What membership of ``group`` gives: its permissions, and the membership itself where
    that is a right (Compliance, the supervised-access approvers)."""
    rights = _permission_names(group.permissions.all())
    special = membership_rights()
    if group.name in special:
        rights.add(special[group.name])
    return frozenset(rights)


def rights(user) -> frozenset[str]:
    """Everything ``user`` may do through their groups, own permissions and staff status,
    whether or not the account is active now (an inactive account can be made active)."""
    if user.is_superuser:
        return frozenset({"superuser"})
    granted = _permission_names(
        Permission.objects.filter(Q(user=user) | Q(group__user=user)).distinct()
    )
    special = membership_rights()
    granted |= {
        special[name]
        for name in user.groups.filter(name__in=special).values_list("name", flat=True)
    }
    if user.is_staff:
        granted.add("staff")
    return frozenset(granted)


def may_manage(actor, target) -> bool:
    """Whether ``actor`` may change ``target``'s password, second factor, groups, permissions
    or active state: a superuser may change anyone; anyone else only an account that is not a
    superuser and whose rights are all rights ``actor`` has too."""
    if actor.is_superuser:
        return True
    if target.is_superuser:
        return False
    return rights(target) <= rights(actor)


def may_not_manage_reason(target) -> str:
    """What the admin tells someone who may not manage ``target``."""
    return (
        f"Only a superuser can change {target.get_username()}: they have rights you do not. "
        "Ask a superuser to do it."
    )


def may_assign(actor, group) -> bool:
    """Whether ``actor`` may put someone in ``group``: only if it gives no right they lack."""
    return actor.is_superuser or group_rights(group) <= rights(actor)


def assignable_groups(actor, queryset):
    """The groups of ``queryset`` that ``actor`` may assign."""
    if actor.is_superuser:
        return queryset
    return queryset.filter(pk__in=[g.pk for g in queryset if may_assign(actor, g)])


def is_role_group(group) -> bool:
    return group.name in ROLES


ROLE_GROUP_READ_ONLY = (
    "{name} is a role group managed by the application: its name and permissions are set in "
    "accounts/roles.py and cannot be changed here. Create a group of your own instead."
)


# --- Guarding role groups' permissions -----------------------------------------------------------


def _refused(groups, operation: str, permissions) -> None:
    """Record group.change_refused for each (pk, name) of ``groups``."""

    for pk, name in sorted(groups):
        record(
            "group.change_refused",
            outcome="denied",
            target=f"auth.group:{pk}",
            group=name,
            operation=operation,
            permissions=sorted(permissions),
        )
        logger.warning(
            "The permissions of the role group %s are managed by the application; "
            "the change (%s) was refused and recorded in the audit log.",
            name,
            operation,
        )


def refuse_role_group_changes(sender, instance, action, reverse, model, pk_set, **kwargs):
    """m2m_changed receiver for Group.permissions: a change to a role group's permissions
    outside ``ensure_roles`` is undone before it reaches the database, and recorded.

    It does not raise: an exception here would roll back the transaction the refusal is
    recorded in, and the attempt would leave no trace. Added or removed ids are dropped from
    the change; a clear is put back right after it.
    """
    if _ensuring_roles.get() or action not in {
        "pre_add",
        "pre_remove",
        "pre_clear",
        "post_clear",
    }:
        return
    operation = action.removeprefix("pre_").removeprefix("post_")
    if not reverse:
        # instance is a group; pk_set holds permission ids.
        if not is_role_group(instance):
            return
        if action == "pre_clear":
            instance._role_permissions_before_clear = list(
                instance.permissions.values_list("pk", flat=True)
            )
            return
        if action == "post_clear":
            kept = getattr(instance, "_role_permissions_before_clear", [])
            sender.objects.bulk_create(
                [sender(group_id=instance.pk, permission_id=pk) for pk in kept]
            )
            _refused(
                [(instance.pk, instance.name)],
                operation,
                _permission_names(Permission.objects.filter(pk__in=kept)),
            )
            return
        if pk_set:
            refused = _permission_names(Permission.objects.filter(pk__in=pk_set))
            pk_set.clear()
            _refused([(instance.pk, instance.name)], operation, refused)
        return
    # instance is a permission; pk_set holds group ids.
    permission = _permission_names(Permission.objects.filter(pk=instance.pk))
    role_groups = Group.objects.filter(name__in=ROLES)
    if action == "pre_clear":
        instance._role_groups_before_clear = list(
            role_groups.filter(permissions=instance).values_list("pk", "name")
        )
        return
    if action == "post_clear":
        kept = getattr(instance, "_role_groups_before_clear", [])
        sender.objects.bulk_create(
            [sender(group_id=pk, permission_id=instance.pk) for pk, _ in kept]
        )
        if kept:
            _refused(kept, operation, permission)
        return
    hit = dict(role_groups.filter(pk__in=pk_set or ()).values_list("pk", "name"))
    if hit:
        pk_set.difference_update(hit)
        _refused(hit.items(), operation, permission)
