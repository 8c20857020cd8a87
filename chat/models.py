"""Conversations and their messages. Titles and contents are encrypted at rest."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.crypto import EncryptedTextField


class Conversation(models.Model):
    """One chat thread of one user with the model."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = EncryptedTextField(help_text="Encrypted with the chat keyring.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return f"conversation {self.id} of {self.user_id}"


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
    role = models.CharField(max_length=16, choices=Role.choices)
    content = EncryptedTextField(blank=True, help_text="Encrypted with the chat keyring.")
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


class AnswerSources(models.Model):
    """The document passages an answer was given (chat.retrieval), kept with it."""

    answer = models.OneToOneField(
        Message, on_delete=models.CASCADE, primary_key=True, related_name="sources"
    )
    citations = EncryptedTextField(help_text="JSON, encrypted with the chat keyring.")

    class Meta:
        verbose_name_plural = "answer sources"

    def __str__(self):
        return f"sources of {self.answer_id}"
