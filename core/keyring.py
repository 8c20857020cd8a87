"""The chat keyring (``CHAT_ENCRYPTION_KEYS`` or ``var/keys/chat_keyring``) as a MultiFernet:
the first key encrypts, every key decrypts, so a new key can be put in front and old data
re-encrypted at leisure. It encrypts what belongs to no user and wraps the per-user data
keys of ``core.datakeys``."""

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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
