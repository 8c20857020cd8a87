"""Conversations and their messages. Titles and contents are encrypted at rest."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from chat import search
from core.crypto import EncryptedTextField


def _with_search_bits(instance, field: str, update_fields):
    """Keep ``search_bits`` in step with the text it describes (chat/search.py); returns
    the update_fields to save with."""
    if update_fields is not None and field not in update_fields:
        return update_fields
    instance.search_bits = search.bits_for(getattr(instance, field))
    return None if update_fields is None else {*update_fields, "search_bits"}


class Conversation(models.Model):
    """One chat thread of one user with the model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = EncryptedTextField(help_text="Encrypted with the chat keyring.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The last message of the thread shown: the path from it up through each message's
    # parent is the conversation as it reads now. Other branches are earlier versions.
    # The conversation's own settings; None takes the site's default.
    instructions = EncryptedTextField(
        blank=True,
        help_text="Encrypted with the chat keyring. Added to the model's system prompt after "
        "the site's own.",
    )
    temperature = models.FloatField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest answer, in tokens."
    )
    search_bits = models.BinaryField(
        null=True, editable=False, help_text="A keyed filter of the title's words (chat/search.py)."
    )
    pinned = models.BooleanField(default=False, help_text="Listed first.")
    archived = models.BooleanField(default=False, help_text="Listed apart, under Archived.")
    current_leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last message of the version of the conversation shown.",
    )

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "archived", "pinned", "-updated_at", "-id"])]

    def __str__(self):
        return f"conversation {self.id} of {self.user_id}"

    def save(self, *args, update_fields=None, **kwargs):
        update_fields = _with_search_bits(self, "title", update_fields)
        super().save(*args, update_fields=update_fields, **kwargs)


class Message(models.Model):
    """A user's question or the model's answer, with how the answer was produced."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming", "being written"
        CANCELLED = "cancelled", "stopped by the user"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The message this one follows (None for a first question). Messages with the same
    # parent are versions of each other: a regenerated answer, an edited question.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = EncryptedTextField(blank=True, help_text="Encrypted with the chat keyring.")
    search_bits = models.BinaryField(
        null=True, editable=False, help_text="A keyed filter of the text's words (chat/search.py)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model_name = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self):
        return f"{self.role} message {self.id} ({self.status})"

    def save(self, *args, update_fields=None, **kwargs):
        update_fields = _with_search_bits(self, "content", update_fields)
        super().save(*args, update_fields=update_fields, **kwargs)


class Preset(models.Model):
    """Conversation settings a user saved under a name of their own, to use again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_presets"
    )
    name = EncryptedTextField(help_text="Encrypted with the chat keyring.")
    instructions = EncryptedTextField(blank=True, help_text="Encrypted with the chat keyring.")
    temperature = models.FloatField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"preset {self.id} of {self.user_id}"
