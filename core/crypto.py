"""Encryption at rest with the project keyring (``CHAT_ENCRYPTION_KEYS`` or
``var/keys/chat_keyring``).

The keyring is a MultiFernet: the first key encrypts, every key decrypts, so a new key can
be put in front and old data re-encrypted at leisure. ``EncryptedTextField`` stores text as a
Fernet token (AES-128-CBC with HMAC-SHA256, timestamped) and decrypts it when loaded.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """Stored data that no key of the keyring can decrypt."""


@lru_cache(maxsize=4)
def _keyring(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "CHAT_ENCRYPTION_KEYS (or var/keys/chat_keyring) holds a value that is not a Fernet key: "
            "each key is 32 random bytes in URL-safe base64 (44 characters)."
        ) from None


def keyring() -> MultiFernet:
    return _keyring(tuple(settings.CHAT_KEYRING))


def encrypt(text: str) -> str:
    return keyring().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return keyring().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise DecryptionError(
            "Stored data cannot be decrypted with any key in CHAT_ENCRYPTION_KEYS: the key that "
            "encrypted it is missing from the keyring (restore it from the key backup)."
        ) from None


class EncryptedTextField(models.TextField):
    """Text stored encrypted with the project keyring; Python code sees plain text."""

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt(value)


def encrypted_columns() -> list[tuple[type[models.Model], str, str]]:
    """Every ``EncryptedTextField`` of every installed model, found through the app registry
    (never listed by hand, so a new encrypted column is covered by start-up checks and key
    rotation): ``(model, field name, label)``, the label being the model's plural name (with
    the field's name where a model has several)."""
    columns = []
    for model in apps.get_models():
        fields = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        plural = str(model._meta.verbose_name_plural)
        for name in fields:
            columns.append((model, name, plural if len(fields) == 1 else f"{plural} ({name})"))
    return columns


def check_keyring_opens_stored_data() -> None:
    """Raise DecryptionError at start-up, not at a user's first click, when the keyring
    cannot read what is stored (a key left out of CHAT_ENCRYPTION_KEYS, the wrong key file
    restored). Reads the oldest and the newest row of every encrypted column."""
    for model, field, _label in encrypted_columns():
        rows = model.objects.exclude(**{f"{field}__isnull": True}).only("pk", field)
        rows.order_by("pk").first()
        rows.order_by("-pk").first()
