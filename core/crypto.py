"""Encryption at rest: ``EncryptedTextField`` stores text as a Fernet token (AES-128-CBC
with HMAC-SHA256, timestamped) and decrypts it when loaded.

A field given ``data_key`` (a function of the row that names its owner's data key,
``core.datakeys``) seals its value under that per-user key, so that destroying the key
erases the value, in every backup too. Without it, the value is encrypted with the chat
keyring (``core.keyring``), which only key rotation replaces.
"""

from collections.abc import Callable

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import models

from core import datakeys
from core.keyring import keyring


class DecryptionError(Exception):
    """Stored data that no key of the keyring can decrypt."""


def encrypt(text: str) -> str:
    return keyring().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """The text of a stored value: sealed under a data key (``datakeys.ERASED`` when that key
    was destroyed) or encrypted with the keyring."""
    if datakeys.is_sealed(token):
        try:
            return datakeys.open_token(token)
        except datakeys.DataKeyError as exc:
            raise DecryptionError(str(exc)) from None
    try:
        return keyring().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise DecryptionError(
            "Stored data cannot be decrypted with any key in CHAT_ENCRYPTION_KEYS: the key that "
            "encrypted it is missing from the keyring (restore it from the key backup)."
        ) from None


class Sealed(str):
    """A value already encrypted for storage, passed through unchanged."""

    __slots__ = ()


class EncryptedTextField(models.TextField):
    """Text stored encrypted; Python code sees plain text.

    ``data_key(row) -> KeyRef``: seal under that per-user data key (made on first use, or,
    with ``creates_key=False``, one the row's parent must have made). Such a value is
    encrypted when a row is saved (``save()``, ``create()``, ``bulk_create()``), where the
    row is known; a queryset ``update()`` of the column is refused, as it would not know
    whose key to use. ``key_related`` names the relations ``data_key`` reads, so that code
    re-saving rows in bulk (key rotation) can select them along.
    """

    description = "Text encrypted at rest"

    def __init__(
        self,
        *args,
        data_key: Callable[[models.Model], datakeys.KeyRef] | None = None,
        key_related: tuple[str, ...] = (),
        creates_key: bool = True,
        **kwargs,
    ):
        self.data_key = data_key
        self.key_related = key_related
        self.creates_key = creates_key
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt(value)

    def pre_save(self, model_instance, add):
        value = super().pre_save(model_instance, add)
        if value is None or self.data_key is None:
            return value
        if isinstance(value, datakeys.Erased):
            return Sealed(datakeys.ERASED_TOKEN)
        try:
            return Sealed(
                datakeys.seal(self.data_key(model_instance), value, create=self.creates_key)
            )
        except datakeys.DataKeyError as exc:
            raise DecryptionError(str(exc)) from None

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return str(value)
        value = super().get_prep_value(value)
        if value is None:
            return None
        if self.data_key is not None:
            raise ValueError(
                f"{self.model.__name__}.{self.name} is sealed under its owner's data key: "
                "change it by saving the row, not with a queryset update."
            )
        return encrypt(value)


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
    sealed_rows = False
    for model, field, _label in encrypted_columns():
        rows = model.objects.exclude(**{f"{field}__isnull": True}).only("pk", field)
        rows.order_by("pk").first()
        rows.order_by("-pk").first()
        sealed_rows = sealed_rows or (
            model._meta.get_field(field).data_key is not None and rows.exists()
        )
    if sealed_rows and datakeys.store_is_empty():
        raise DecryptionError(
            f"The database holds content sealed under data keys, but the key store "
            f"{datakeys.store_dir()} is empty or missing: point DATA_KEY_DIR at the key store "
            "the other processes use (a shared directory), or restore it from the key archive "
            "(python -m project.backup restore-keys)."
        )
