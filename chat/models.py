"""Conversations and their messages. Titles and contents are encrypted at rest, each
conversation under a data key of its own (``core.datakeys``), which erasing it destroys."""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from chat import search
from core import datakeys
from core.crypto import EncryptedTextField


def _conversation_key(conversation) -> datakeys.KeyRef:
    return datakeys.conversation_key(conversation.user_id, conversation.pk)


def _message_key(message) -> datakeys.KeyRef:
    return datakeys.conversation_key(message.conversation.user_id, message.conversation_id)


def _preset_key(preset) -> datakeys.KeyRef:
    return datakeys.user_key(preset.user_id)


def _with_search_bits(instance, field: str, update_fields):
    """Keep ``search_bits`` in step with the text it describes (chat/search.py); returns
    the update_fields to save with."""
    if update_fields is not None and field not in update_fields:
        return update_fields
    instance.search_bits = search.bits_for(getattr(instance, field))
    return None if update_fields is None else {*update_fields, "search_bits"}


class Conversation(models.Model):
    """One chat thread of one user with the model, started on the chat page or by an API call
    the site keeps (API_STORE_CONVERSATIONS)."""

    class Origin(models.TextChoices):
        PAGE = "page", "the chat page"
        API = "api", "an API call"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = EncryptedTextField(
        help_text="Encrypted under the conversation's data key.", data_key=_conversation_key
    )
    model_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The model chosen for this conversation; empty for the site's default.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The conversation's own settings; None takes the site's default.
    instructions = EncryptedTextField(
        blank=True,
        help_text="Encrypted under the conversation's data key. Added to the model's system "
        "prompt after the site's own.",
        data_key=_conversation_key,
    )
    temperature = models.FloatField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest answer, in tokens."
    )
    search_bits = models.BinaryField(
        null=True, editable=False, help_text="A keyed filter of the title's words (chat/search.py)."
    )
    origin = models.CharField(
        max_length=8,
        choices=Origin.choices,
        default=Origin.PAGE,
        help_text="Where it was started: the chat page, or an API call kept as a conversation.",
    )
    # The token an API call came with, as it was named then (it may be revoked or renamed
    # since); empty for the page's conversations.
    api_token_name = models.CharField(
        max_length=100, blank=True, help_text="For an API call: the name of its token."
    )
    api_token_prefix = models.CharField(
        max_length=16,
        blank=True,
        help_text="For an API call: its token's visible first characters.",
    )
    pinned = models.BooleanField(default=False, help_text="Listed first.")
    archived = models.BooleanField(default=False, help_text="Listed apart, under Archived.")
    # The last message of the thread shown: the path from it up through each message's
    # parent is the conversation as it reads now. Other branches are earlier versions.
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


def origin_as_dict(conversation: Conversation) -> dict:
    """Where a conversation was started, as the page and the JSON export show it:
    ``{"origin": "page" or "api", "api_token": {"name", "prefix"} or None}``."""
    if conversation.origin != Conversation.Origin.API:
        return {"origin": conversation.origin, "api_token": None}
    return {
        "origin": conversation.origin,
        "api_token": {"name": conversation.api_token_name, "prefix": conversation.api_token_prefix},
    }


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
    content = EncryptedTextField(
        blank=True,
        help_text="Encrypted under the conversation's data key.",
        data_key=_message_key,
        key_related=("conversation",),
        # The conversation made the key; a message never makes one (docs/architecture.md).
        creates_key=False,
    )
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
    name = EncryptedTextField(
        help_text="Encrypted under the user's data key.", data_key=_preset_key
    )
    instructions = EncryptedTextField(
        blank=True, help_text="Encrypted under the user's data key.", data_key=_preset_key
    )
    temperature = models.FloatField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"preset {self.id} of {self.user_id}"


class SupervisedAccess(models.Model):
    """A request by a member of Compliance to read one user's conversations for a while.

    Nobody reads another person's chats otherwise. A second person, from the group that
    SUPERVISED_ACCESS_APPROVERS names, approves or refuses it; an approved request lets its
    requester, and only them, read the conversations read-only from the approval until
    ``ends_at``. Every reading is counted here and recorded as access.used; once the time
    is over the user sees on their account page when and why it happened.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "waiting for approval"
        APPROVED = "approved"
        REFUSED = "refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="supervised_accesses",
        help_text="The user whose conversations would be read.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    justification = models.TextField(help_text="Why; the user is shown it afterwards.")
    hours = models.PositiveIntegerField(help_text="How long the reading may last once approved.")
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True)
    refusal_reason = models.TextField(blank=True)
    ends_at = models.DateTimeField(null=True, help_text="Set on approval.")
    times_used = models.PositiveIntegerField(default=0)
    first_used_at = models.DateTimeField(null=True)
    last_used_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["subject", "status"])]

    def __str__(self):
        return f"supervised access {self.id} to {self.subject_id} ({self.status})"

    def is_open(self, now=None) -> bool:
        """Approved and not yet over."""
        now = now or timezone.now()
        return self.status == self.Status.APPROVED and self.ends_at > now

    def has_ended(self, now=None) -> bool:
        now = now or timezone.now()
        return self.status == self.Status.APPROVED and self.ends_at <= now


def _sources_key(sources) -> datakeys.KeyRef:
    conversation = sources.answer.conversation
    return datakeys.conversation_key(conversation.user_id, conversation.id)


class AnswerSources(models.Model):
    """The document passages an answer was given (chat.retrieval), kept with it."""

    answer = models.OneToOneField(
        Message, on_delete=models.CASCADE, primary_key=True, related_name="sources"
    )
    citations = EncryptedTextField(
        help_text="JSON, encrypted under the conversation's data key.",
        data_key=_sources_key,
        key_related=("answer__conversation",),
        creates_key=False,
    )

    class Meta:
        verbose_name_plural = "answer sources"

    def __str__(self):
        return f"sources of {self.answer_id}"


class ModelAccess(models.Model):
    """Who may use one model: only members of ``groups``. A model without a row here, or
    whose row names no group, is open to every employee."""

    model_name = models.CharField(
        max_length=200,
        unique=True,
        help_text="The name a worker serves it under (the model directory's name, or "
        "--upstream-model), as /healthz lists it.",
    )
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="model_access",
        help_text="Only members of these groups may choose this model; none: everyone may.",
    )

    class Meta:
        verbose_name = "model access"
        verbose_name_plural = "model access"
        ordering = ["model_name"]

    def __str__(self):
        return f"access to {self.model_name}"
