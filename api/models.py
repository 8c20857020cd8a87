"""Personal API tokens and what they were used for."""

from django.conf import settings
from django.db import models
from django.utils import timezone

SCOPES = ("models", "chat", "embeddings")


class ApiToken(models.Model):
    """A personal token someone uses instead of a session for /v1. Only a keyed hash of it
    is kept; its first characters (``prefix``) are kept in the clear so its owner can tell
    their tokens apart and so a presented token is found without scanning every hash."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="The owner's name for it.")
    prefix = models.CharField(max_length=16, unique=True, help_text="Its visible first characters.")
    digest = models.CharField(max_length=64, help_text="HMAC-SHA256 of the token (SECRET_KEY).")
    scopes = models.CharField(
        max_length=100, help_text="Comma-separated: models, chat, embeddings."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # token.expired is recorded once, at the first use after expiry.
    expiry_recorded = models.BooleanField(default=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_live_token_per_name",
            )
        ]

    def __str__(self):
        return f"API token {self.prefix}… ({self.name}) of {self.user}"

    @property
    def scope_list(self) -> list[str]:
        return [scope for scope in self.scopes.split(",") if scope]

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.is_expired() else "active"


class ApiUsage(models.Model):
    """What one token used on one day (UTC) with one model: the admin's usage view and the
    per-token daily token limit read it."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="usage")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_usage"
    )
    day = models.DateField()
    model_name = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "user", "model_name"]
        verbose_name_plural = "API usage"
        constraints = [
            models.UniqueConstraint(fields=["token", "day", "model_name"], name="usage_per_day")
        ]

    def __str__(self):
        return f"{self.token.prefix}… on {self.day} with {self.model_name}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
