"""The catalogue of audit actions: every action ``record()`` accepts, once, with its area
and what its details say.

``record()`` refuses an action that is not listed here, so a new event is added here first;
docs/security.md's table of events is rendered from this catalogue (``catalogue_table()``)
and a test keeps the two the same.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    name: str
    area: str
    details: str = ""


AREAS = {
    "auth": "sign-in and sessions",
    "devices": "second factors",
    "users": "users and groups (admin, commands, shell)",
    "security": "refusals and probes",
    "chat": "conversations and answers",
    "audit": "the audit log itself",
    "operations": "keys, workers and backups",
}

CATALOGUE: dict[str, Action] = {
    action.name: action
    for action in (
        Action("login.success", "auth", "password step passed"),
        Action("login.failure", "auth", "the username tried, never the password"),
        Action("logout", "auth"),
        Action("lockout", "auth", "the username tried; which limit was reached"),
        Action("lockout.cleared", "auth", "by an admin: whose sign-in was unlocked"),
        Action("otp.success", "auth", "the device kind"),
        Action("otp.failure", "auth", "the device kind"),
        Action("otp.throttled", "auth", "seconds to wait; which throttle"),
        Action("backup_code.used", "auth", "codes left"),
        Action("password.changed", "auth"),
        Action("device.enrolled", "devices", "the device kind"),
        Action("device.reset_by_admin", "devices", "reason, devices removed, sessions ended"),
        Action("backup_codes.generated", "devices", "how many"),
        Action("user.created", "users", "username and flags"),
        Action("user.changed", "users", "which fields"),
        Action("user.deactivated", "users"),
        Action("user.deleted", "users"),
        Action("group.changed", "users", "group created/changed/deleted, members added/removed"),
        Action("group.change_refused", "users", "a change to a role group's permissions"),
        Action("permission.changed", "users", "permissions added to or removed from a user"),
        Action("model_access.changed", "users", "the model; the groups that may use it"),
        Action(
            "network.refused",
            "security",
            "HTTP or websocket; at most 20 per address a minute, the server log keeps the rest",
        ),
        Action("websocket.refused", "security", "the reason"),
        Action("permission.denied", "security", "method and path (admin probes rate-limited)"),
        Action("csrf.failure", "security", "method, path and Django's reason"),
        Action(
            "conversation.not_found",
            "security",
            "someone else's or a made-up conversation id; rate-limited per address",
        ),
        Action("conversation.created", "chat", "the model"),
        Action("conversation.renamed", "chat"),
        Action("conversation.deleted", "chat", "message count"),
        Action("conversation.exported", "chat", "format and message count"),
        Action("message.sent", "chat", "length only; the model asked"),
        Action("generation.done", "chat", "the model, token counts, time to first token, duration"),
        Action("generation.cancelled", "chat", "as generation.done"),
        Action("generation.failed", "chat", "as generation.done; the reason where known"),
        Action("audit.viewed", "audit", "list or detail page, the filter in use"),
        Action("audit.exported", "audit", "format, filter and row count"),
        Action("audit.verified", "audit", "events checked, first bad sequence"),
        Action("audit.purged", "audit", "the checkpoint of the removed events"),
        Action("keys.rotated", "operations", "kind, step, key ids or certificate serials"),
        Action("worker.started", "operations", "worker name, model, device"),
        Action("worker.stopped", "operations", "worker name, model"),
        Action("worker.failed", "operations", "worker name, model, the reason; retried"),
        Action("backup.created", "operations", "archives and their checksums"),
        Action("backup.restored", "operations", "archives, migrations, keys restored"),
    )
}


def catalogue_table() -> str:
    """The Markdown table of docs/security.md's "Events recorded", one row per area."""
    lines = ["| area | actions |", "|---|---|"]
    for area, title in AREAS.items():
        cells = [
            f"`{a.name}` ({a.details})" if a.details else f"`{a.name}`"
            for a in CATALOGUE.values()
            if a.area == area
        ]
        lines.append(f"| {title} | {', '.join(cells)} |")
    return "\n".join(lines)
