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
    "documents": "documents and collections",
    "api": "API tokens and calls",
    "audit": "the audit log itself",
    "access": "supervised access to a user's conversations",
    "operations": "keys, workers and backups",
}

CATALOGUE: dict[str, Action] = {
    action.name: action
    for action in (
        Action("login.success", "auth", "password step passed; the backend: local, ldap or oidc"),
        Action(
            "login.failure",
            "auth",
            "the username tried, never the password; the backend and, for a directory, why",
        ),
        Action("logout", "auth"),
        Action("lockout", "auth", "the username tried; which limit was reached"),
        Action("lockout.cleared", "auth", "by an admin: whose sign-in was unlocked"),
        Action("otp.success", "auth", "the device kind; step_up when it confirmed an action"),
        Action("otp.failure", "auth", "the device kind; step_up when it confirmed an action"),
        Action("otp.throttled", "auth", "seconds to wait; which throttle; step_up"),
        Action("backup_code.used", "auth", "codes left; step_up when it confirmed an action"),
        Action("password.changed", "auth"),
        Action(
            "session.ended",
            "auth",
            "which sessions (their ids on the sessions page), how many, and why: by_owner, "
            "by_admin, password_changed, two_factor_reset, deactivated; the actor is who ended them",
        ),
        Action(
            "passkey.used",
            "auth",
            "which passkey, its sign count; step_up when it confirmed an action, and the "
            "action (purpose: api_token) when it confirmed that one action only",
        ),
        Action(
            "passkey.failed",
            "auth",
            "registration, authentication or an action (api_token), and why "
            "(counter_regression, wrong_origin, no_challenge, challenge_expired, ...)",
        ),
        Action("device.enrolled", "devices", "the device kind"),
        Action("passkey.registered", "devices", "which passkey, its name, how many the user has"),
        Action("passkey.removed", "devices", "which passkey, its name"),
        Action(
            "device.reset_by_admin",
            "devices",
            "reason, devices and passkeys removed, sessions ended",
        ),
        Action("backup_codes.generated", "devices", "how many"),
        Action("user.created", "users", "username and flags"),
        Action("user.changed", "users", "which fields"),
        Action("user.deactivated", "users"),
        Action("user.deleted", "users"),
        Action(
            "directory.user_created",
            "users",
            "first sign-in of a directory or identity-provider account: source, role groups",
        ),
        Action(
            "directory.roles_changed",
            "users",
            "role groups before and after, at sign-in or by sync_directory",
        ),
        Action(
            "directory.user_deactivated",
            "users",
            "by sync_directory: disabled, deleted or in no mapped group",
        ),
        Action("oidc.refused", "auth", "an identity provider's answer refused, and why"),
        Action(
            "user.erased",
            "users",
            "the username it had, the reason, counts of what was erased and of data keys destroyed",
        ),
        Action("user.data_exported", "users", "by the user or by an admin on request; counts"),
        Action("legal_hold.placed", "users", "by Compliance: the case reference"),
        Action("legal_hold.lifted", "users", "by Compliance: the case reference, days held"),
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
        Action("conversation.created", "chat", "the model; origin: page or api"),
        Action("conversation.renamed", "chat"),
        Action("conversation.deleted", "chat", "message count"),
        Action("conversation.exported", "chat", "format and message count"),
        Action("conversation.version_shown", "chat", "the message id of the version"),
        Action("conversation.pinned", "chat"),
        Action("conversation.unpinned", "chat"),
        Action("conversation.archived", "chat"),
        Action("conversation.unarchived", "chat"),
        Action(
            "conversation.settings_changed",
            "chat",
            "fields changed, instructions length, temperature, answer length",
        ),
        Action("preset.saved", "chat", "whether it replaced one, instructions length"),
        Action("preset.deleted", "chat"),
        Action("message.sent", "chat", "length only; the model asked"),
        Action("message.edited", "chat", "length only; the ids of the new and old question"),
        Action("generation.done", "chat", "the model, token counts, time to first token, duration"),
        Action("generation.cancelled", "chat", "as generation.done"),
        Action("generation.failed", "chat", "as generation.done; the reason where known"),
        Action("document.uploaded", "documents", "type, size, collection id"),
        Action(
            "document.indexed",
            "documents",
            "passages, pages, embedding model (and the previous one when indexed again)",
        ),
        Action("document.failed", "documents", "type, the reason shown to the owner"),
        Action("document.deleted", "documents", "passages removed"),
        Action("document.not_found", "security", "someone else's or a made-up document id"),
        Action("collection.created", "documents", "owner group id"),
        Action("collection.granted", "documents", "group id, read and add rights"),
        Action("collection.revoked", "documents", "group id"),
        Action("collection.deleted", "documents"),
        Action("retrieval", "documents", "answer's message id, document ids, passages; no text"),
        Action(
            "token.created",
            "api",
            "owner, name, scopes, days; confirmed_with: totp or passkey (on the token page)",
        ),
        Action("token.revoked", "api", "owner, name, why (owner, admin, deactivation, reset)"),
        Action("token.expired", "api", "name; at the first use after expiry"),
        Action(
            "api.refused",
            "api",
            "why: bad, expired or revoked token, scope, a limit; bad tokens rate-limited",
        ),
        Action(
            "api.completion",
            "api",
            "endpoint, model, token counts, duration, finish reason; never the text",
        ),
        Action("generation.regenerated", "chat", "the ids of the new and old answer, version"),
        Action("audit.viewed", "audit", "list or detail page, the filter in use"),
        Action("audit.exported", "audit", "format, filter and row count"),
        Action("audit.verified", "audit", "events checked, first bad sequence"),
        Action("audit.purged", "audit", "the checkpoint of the removed events"),
        Action(
            "access.requested",
            "access",
            "whose conversations (target), hours asked, the justification",
        ),
        Action("access.approved", "access", "by a second person: requester, end of the window"),
        Action("access.refused", "access", "by a second person: requester, the reason"),
        Action(
            "access.used",
            "access",
            "a reading: the list (conversation count) or one conversation (id, message count)",
        ),
        Action("keys.rotated", "operations", "kind, step, key ids or certificate serials"),
        Action("worker.started", "operations", "worker name, model, device"),
        Action("worker.stopped", "operations", "worker name, model"),
        Action("worker.failed", "operations", "worker name, model, the reason; retried"),
        Action("backup.created", "operations", "archives and their checksums"),
        Action("backup.restored", "operations", "archives, migrations, keys restored"),
        Action(
            "retention.applied",
            "operations",
            "per batch: conversations and messages erased; per run: totals, conversations kept "
            "under a legal hold, whether nothing is left, the periods in days",
        ),
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
