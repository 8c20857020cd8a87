"""The audit log: one row per security-relevant event, linked into a keyed hash chain.

Each event stores the hash of the event before it and its own
``HMAC-SHA256(audit key, prev_hash || canonical JSON of its fields)``. The key lives outside
the database (``AUDIT_HMAC_KEY`` or ``var/keys/audit_hmac_key``), so someone who can write
to the database but does not hold the key cannot alter, remove or reorder events without
``manage.py audit_verify`` noticing. ``audit.log.record`` is the only way to add events.
"""

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError(
            "Audit events cannot be deleted; `manage.py audit_purge` removes old ones."
        )

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Audit events cannot be changed.")

    def _purge(self) -> int:
        """Delete these events; for audit.chain.purge only, which leaves a checkpoint."""
        return models.QuerySet.delete(self)[0]


class AuditEvent(models.Model):
    """Something security-relevant that happened: who, what, when, from where, with what result.

    Rows are never changed or deleted (except by the audited purge of old events); the
    ``sequence``, ``prev_hash`` and ``hash`` fields chain them so that tampering shows.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    sequence = models.PositiveBigIntegerField(
        unique=True, editable=False, help_text="Position in the hash chain, starting at 1."
    )
    created_at = models.DateTimeField(
        db_index=True, editable=False, help_text="When the event happened (UTC)."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # No constraint and no cascade: deleting a user must not touch the events about them.
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        help_text="The account that acted, if one was signed in.",
    )
    actor_username = models.CharField(
        max_length=150,
        blank=True,
        editable=False,
        help_text="The actor's username at the time of the event; empty for anonymous or system.",
    )
    action = models.CharField(
        max_length=64, db_index=True, editable=False, help_text="What happened, e.g. login.failure."
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, editable=False)
    target = models.CharField(
        max_length=200,
        blank=True,
        editable=False,
        help_text="What the action was done to, e.g. user:42 or conversation:<id>.",
    )
    source_ip = models.CharField(
        max_length=45, blank=True, editable=False, help_text="The client's address."
    )
    user_agent = models.CharField(max_length=256, blank=True, editable=False)
    request_id = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Also in the X-Request-ID response header and the server log.",
    )
    details = models.JSONField(
        default=dict,
        editable=False,
        help_text="Further facts about the event; never passwords, codes, keys or message text.",
    )
    key_id = models.CharField(
        max_length=16, editable=False, help_text="Which audit key signed this event."
    )
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        verbose_name = "audit event"
        indexes = [models.Index(fields=["actor_username", "created_at"])]

    def __str__(self):
        who = self.actor_username or "anonymous"
        where = f" from {self.source_ip}" if self.source_ip else ""
        when = self.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"#{self.sequence} {when} {self.action} by {who}{where} ({self.outcome})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")


class AuditChainHead(models.Model):
    """The newest event's sequence and hash: the lock appends take, and the chain's anchor.

    There is exactly one row. Comparing it with the newest event reveals events removed
    from the end of the chain.
    """

    sequence = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self):
        return f"audit chain head at #{self.sequence}"
