"""Who may read the audit log: members of the Compliance group, and nobody by permission alone.

A permission is something an admin can grant; membership of Compliance is something only a
superuser can give (and giving it is recorded as group.changed).
"""

READERS_GROUP = "Compliance"

NOT_A_READER = (
    "Only members of the Compliance group can read the audit log. If your work needs it, ask "
    "a superuser to add you to Compliance (that is recorded in the audit log)."
)


def may_read_audit_log(user) -> bool:
    """Whether ``user`` may read, export and verify the audit log: an active, signed-in member
    of Compliance (superusers too only when they are members)."""
    return bool(
        user.is_authenticated and user.is_active and user.groups.filter(name=READERS_GROUP).exists()
    )
