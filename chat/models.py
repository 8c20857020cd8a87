"""Conversations and their messages. Titles and contents are encrypted at rest."""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
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
    model_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The model chosen for this conversation; empty for the site's default.",
    )
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
