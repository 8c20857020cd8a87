"""Per-user data keys: what makes erasure final, even against old database backups.

Each user's content is encrypted under data keys of their own: one per conversation (so
that one conversation can be erased) and one for the user (for anything else of theirs).
A data key is a Fernet key, stored *wrapped* (encrypted with the chat keyring) in the key
store, a directory outside the database (``DATA_KEY_DIR``, by default
``VAR_DIR/keys/data``)::

    <DATA_KEY_DIR>/<user id>/user
    <DATA_KEY_DIR>/<user id>/conversation-<conversation id>

Erasing destroys the key file (a conversation's, or the user's whole directory). The
database keeps only ciphertext, so a database backup restored later with today's key store
cannot read what was erased: ``open_token`` returns ``ERASED`` for it, and everything else
reads as before. The key store is backed up in the key archive of ``manage.py backup``
(not the database archive), whose short retention bounds how long an erased key survives.

A value sealed under a data key is stored as ``dk1:<user id>:<scope>:<key id>:<Fernet
token>``. The key id (a digest of the data key) tells a destroyed key from a newer key
made later for the same name: content under the destroyed one stays erased.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from core.keyring import keyring

PREFIX = "dk1:"
# What an erased value is stored as once rewritten (key rotation re-saves rows).
ERASED_TOKEN = "erased:"  # noqa: S105 (a marker stored in place of a value, not a secret)
USER_SCOPE = "user"
CONVERSATION_SCOPE = "conversation-"
_SCOPE = re.compile(r"^[a-z][a-z0-9-]{0,100}$")


class Erased(str):
    """The text of content whose data key was destroyed: shown as such, never decrypted."""

    __slots__ = ()


ERASED = Erased("(erased)")


class DataKeyError(Exception):
    """A data key that exists but cannot be unwrapped with the chat keyring."""


@dataclass(frozen=True)
class KeyRef:
    """Which data key: its owner (a user id) and its scope within that user's keys."""

    owner: int
    scope: str

    def __post_init__(self):
        if not isinstance(self.owner, int) or self.owner < 0 or not _SCOPE.match(self.scope):
            raise ValueError(f"Not a data key name: owner {self.owner!r}, scope {self.scope!r}.")


def user_key(user_id: int) -> KeyRef:
    return KeyRef(int(user_id), USER_SCOPE)


def conversation_key(user_id: int, conversation_id) -> KeyRef:
    return KeyRef(int(user_id), f"{CONVERSATION_SCOPE}{conversation_id}")


def store_dir() -> Path:
    return Path(settings.DATA_KEY_DIR)


def _path(ref: KeyRef) -> Path:
    return store_dir() / str(ref.owner) / ref.scope


def key_digest(key: bytes) -> str:
    return hashlib.sha256(b"data-key-id:" + key).hexdigest()[:12]


# Unwrapped keys by path, valid while the file is the same one (inode and change time) and
# the keyring the same: a key destroyed by another process is noticed at its next use,
# without re-reading files.
_cache: dict[Path, tuple[tuple, bytes]] = {}


def _fsync_directory(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load(path: Path) -> bytes | None:
    """The unwrapped key stored at ``path``, or None when there is none."""
    try:
        info = path.stat()
    except FileNotFoundError:
        _cache.pop(path, None)
        return None
    stamp = (info.st_ino, info.st_ctime_ns, tuple(settings.CHAT_KEYRING))
    cached = _cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        wrapped = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    try:
        key = keyring().decrypt(wrapped)
    except InvalidToken:
        raise DataKeyError(
            f"The data key {path} cannot be unwrapped with any key in CHAT_ENCRYPTION_KEYS: "
            "the key that wrapped it is missing from the keyring (restore it from the key backup)."
        ) from None
    _cache[path] = (stamp, key)
    return key


def _create(path: Path) -> bytes:
    """Make a new key at ``path``, unless another process just did: then use theirs."""
    # Each level 0700: mkdir(parents=True) would give the store itself the umask's mode.
    store_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    key = Fernet.generate_key()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(keyring().encrypt(key) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # A link never replaces an existing file: of two processes, the first one wins.
            os.link(temporary, path)
        except FileExistsError:
            existing = _load(path)
            if existing is not None:
                return existing
            raise
    finally:
        Path(temporary).unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return _load(path)


def seal(ref: KeyRef, text: str, *, create: bool = True) -> str:
    """``text`` encrypted under the data key ``ref``, made on first use if ``create``;
    otherwise the key must exist (an answer is sealed under its conversation's key, which
    the conversation made: a missing one means a key store that is not shared)."""
    path = _path(ref)
    key = _load(path)
    if key is None and not create:
        raise DataKeyError(
            f"There is no data key {ref.owner}/{ref.scope} in {store_dir()}: either it was "
            "erased, or this process does not see the key store the others write to (every "
            "web process and worker must use the same DATA_KEY_DIR)."
        )
    key = key or _create(path)
    token = Fernet(key).encrypt(text.encode("utf-8")).decode("ascii")
    return f"{PREFIX}{ref.owner}:{ref.scope}:{key_digest(key)}:{token}"


def is_sealed(token: str) -> bool:
    return token.startswith(PREFIX) or token == ERASED_TOKEN


def ref_of(token: str) -> KeyRef:
    owner, scope, _digest, _rest = token.removeprefix(PREFIX).split(":", 3)
    return KeyRef(int(owner), scope)


def open_token(token: str) -> str:
    """The text of a sealed value, or ``ERASED`` when its data key is gone."""
    if token == ERASED_TOKEN:
        return ERASED
    owner, scope, digest, fernet_token = token.removeprefix(PREFIX).split(":", 3)
    key = _load(_path(KeyRef(int(owner), scope)))
    if key is None or key_digest(key) != digest:
        return ERASED
    try:
        return Fernet(key).decrypt(fernet_token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise DataKeyError(
            f"A value sealed under the data key {owner}/{scope} does not decrypt with it: "
            "the stored value was altered."
        ) from None


def exists(ref: KeyRef) -> bool:
    return _path(ref).exists()


# --- Destroying keys, and the notes that remember it ---------------------------------------
#
# The key store notes each erasure, so that a database backup restored later can be brought
# up to date (``manage.py reapply_erasures``): ``<user id>/_erased`` lists the erased scopes of
# a user, one "scope time" a line; ``<user id>.erased`` (JSON) notes a whole user's erasure.
# Neither is a key, and neither matches a key's name.

ERASED_SCOPES = "_erased"
ERASED_OWNER_SUFFIX = ".erased"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def destroy(ref: KeyRef) -> bool:
    """Destroy one data key; whatever it encrypted is then erased. Returns whether it existed."""
    path = _path(ref)
    _cache.pop(path, None)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    with (path.parent / ERASED_SCOPES).open("a", encoding="ascii") as notes:
        notes.write(f"{ref.scope} {_now()}\n")
        notes.flush()
        os.fsync(notes.fileno())
    _fsync_directory(path.parent)
    return True


def destroy_owner(user_id: int, *, note: dict | None = None) -> int:
    """Destroy every data key of a user, noting it with ``note`` (what tells this user from a
    later one given the same id); returns how many keys there were."""
    store = store_dir()
    directory = store / str(int(user_id))
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker = store / f"{int(user_id)}{ERASED_OWNER_SUFFIX}"
    marker.write_text(json.dumps({"erased_at": _now(), **(note or {})}), encoding="utf-8")
    marker.chmod(0o600)
    if not directory.is_dir():
        _fsync_directory(store)
        return 0
    destroyed = [path for path in directory.iterdir() if _SCOPE.match(path.name)]
    for path in directory.iterdir():
        _cache.pop(path, None)
    shutil.rmtree(directory)
    _fsync_directory(store)
    return len(destroyed)


def key_count(user_id: int) -> int:
    """How many data keys a user has."""
    directory = store_dir() / str(int(user_id))
    if not directory.is_dir():
        return 0
    return sum(1 for path in directory.iterdir() if _SCOPE.match(path.name))


def erased_owners() -> dict[int, dict]:
    """The users whose keys were all destroyed, with the note of each."""
    store = store_dir()
    if not store.is_dir():
        return {}
    owners = {}
    for path in store.glob(f"*{ERASED_OWNER_SUFFIX}"):
        owner = path.name.removesuffix(ERASED_OWNER_SUFFIX)
        if owner.isdigit():
            owners[int(owner)] = json.loads(path.read_text(encoding="utf-8"))
    return owners


def erased_scopes() -> list[KeyRef]:
    """Every single key destroyed (a conversation's, a document's) of users still present."""
    store = store_dir()
    refs = []
    for notes in sorted(store.glob(f"*/{ERASED_SCOPES}")) if store.is_dir() else []:
        if not notes.parent.name.isdigit():
            continue
        for line in notes.read_text(encoding="ascii").splitlines():
            scope = line.split(" ", 1)[0]
            if _SCOPE.match(scope):
                refs.append(KeyRef(int(notes.parent.name), scope))
    return refs


# Who deletes the rows of an erased scope when a restored database is brought up to date:
# the app that owns the scope registers a function (user id, the scope after its prefix) ->
# how many of its things it removed.
_scope_erasers: dict[str, Callable[[int, str], int]] = {}


def register_scope_eraser(prefix: str, eraser: Callable[[int, str], int]) -> None:
    _scope_erasers[prefix] = eraser


def scope_eraser(scope: str) -> tuple[str, Callable[[int, str], int]] | None:
    for prefix, eraser in _scope_erasers.items():
        if scope.startswith(prefix):
            return prefix, eraser
    return None


# What reads as erased in a restored database, for the restore's erasure check: each app
# that seals things under data keys registers a function -> {label: {user id: how many of
# those things of that user have no data key in the store}}, e.g. {"conversations": {7: 2}}.
_erased_counters: list[Callable[[], dict[str, dict[int, int]]]] = []


def register_erased_counter(counter: Callable[[], dict[str, dict[int, int]]]) -> None:
    if counter not in _erased_counters:
        _erased_counters.append(counter)


def erased_counts() -> dict[str, dict[int, int]]:
    """Per label (conversations, documents, ...), the users whose things of that kind read as
    erased and how many each; labels with nothing erased are left out."""
    counts: dict[str, dict[int, int]] = {}
    for counter in _erased_counters:
        for label, by_user in counter().items():
            if any(by_user.values()):
                counts[label] = {user: n for user, n in by_user.items() if n}
    return counts


def store_is_empty() -> bool:
    """Whether the key store holds nothing at all (no key, no note): a directory that is not
    the key store the site writes to."""
    store = store_dir()
    return not store.is_dir() or not any(store.iterdir())


def key_files() -> list[Path]:
    """Every wrapped key file of the store (for backups and key rotation)."""
    directory = store_dir()
    if not directory.is_dir():
        return []
    return sorted(
        path
        for owner in directory.iterdir()
        if owner.is_dir() and owner.name.isdigit()
        for path in owner.iterdir()
        if path.is_file() and _SCOPE.match(path.name)
    )


def rewrap_all() -> int:
    """Wrap every data key under the keyring's newest key (key rotation); returns how many
    were rewrapped. Each file is replaced atomically; the data keys themselves stay."""
    ring = keyring()
    done = 0
    for path in key_files():
        wrapped = path.read_bytes().strip()
        rewrapped = ring.rotate(wrapped)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(rewrapped + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        _fsync_directory(path.parent)
        done += 1
    return done


def count_not_wrapped_under(newest: Fernet) -> int:
    """How many data keys the newest keyring key alone cannot unwrap."""
    pending = 0
    for path in key_files():
        try:
            newest.decrypt(path.read_bytes().strip())
        except InvalidToken:
            pending += 1
    return pending
