"""The groups that give people their role, and what each may do.

Created by data migrations, and re-created after every migrate (post_migrate) so that a
database flushed by tests or restored without them still has them.
"""

ROLES = {
    # May chat.
    "Employees": [],
    # Manage users and groups (with the is_staff flag that createuser --admin sets).
    "Admins": [
        ("auth", "add_user"),
        ("auth", "change_user"),
        ("auth", "view_user"),
        ("auth", "add_group"),
        ("auth", "change_group"),
        ("auth", "view_group"),
        ("auth", "view_permission"),
    ],
    # Read the audit log, nothing else.
    "Compliance": [("audit", "view_auditevent")],
}


def ensure_roles(group_model, permission_model) -> None:
    """Create missing role groups and give each exactly its permissions."""
    for name, permissions in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(
            [
                permission_model.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in permissions
            ]
        )


EMPLOYEES = "Employees"


def may_chat(user) -> bool:
    """Whether ``user`` may use the chat: members of Employees (and superusers)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.groups.filter(name=EMPLOYEES).exists())
    )
