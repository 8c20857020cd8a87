"""Secrets the server needs, kept in files outside the database.

``python -m core.keys`` creates whatever is missing under ``VAR_DIR/keys`` (``make run``
and ``make test`` call it). A file that exists is never rewritten: regenerating the chat
keyring would make every stored conversation unreadable, and regenerating the audit key
would break the verification of the audit chain. Rotation is a separate, deliberate step
(``manage.py rotate_chat_keys``, ``rotate_audit_key``, ``rotate_secret_key``; see
docs/key-rotation.md): it puts a new key on the first line and keeps the older ones below it.
In every key file the first line is the key in use and the lines below it are older keys,
still accepted for what they protected before.

Files are created with mode 0600 in a directory of mode 0700, and are refused at start-up
if other users can read them.
"""

import argparse
import base64
import contextlib
import hashlib
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db import transaction

SECRET_KEY_FILE = "django_secret_key"  # noqa: S105 (a file name, not a secret)
CHAT_KEYRING_FILE = "chat_keyring"
AUDIT_HMAC_KEY_FILE = "audit_hmac_key"

# The environment variable that, when set, replaces each file (comma-separated, newest first).
ENVIRONMENT_VARIABLES = {
    SECRET_KEY_FILE: "SECRET_KEY",
    CHAT_KEYRING_FILE: "CHAT_ENCRYPTION_KEYS",
    AUDIT_HMAC_KEY_FILE: "AUDIT_HMAC_KEY",
}

HOW_TO_CREATE = "run `make run`, or `python -m core.keys` to create only the key files"


class KeyFileError(Exception):
    """A key file is missing, unreadable or too widely readable."""


def _django_secret_key() -> str:
    # 64 URL-safe characters: well past Django's check of 50 characters and 5 distinct ones.
    return secrets.token_urlsafe(48)


def _fernet_key() -> str:
    # The Fernet key format: 32 random bytes, URL-safe base64.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _hmac_key() -> str:
    return secrets.token_hex(32)


GENERATORS = {
    SECRET_KEY_FILE: _django_secret_key,
    CHAT_KEYRING_FILE: _fernet_key,
    AUDIT_HMAC_KEY_FILE: _hmac_key,
}


def new_key(file_name: str) -> str:
    """A fresh key of the kind that ``file_name`` holds."""
    return GENERATORS[file_name]()


def key_id(kind: str, key: str) -> str:
    """A short, non-secret name for a key (a digest, not the key), to say which key did what
    in logs, audit events and command output."""
    return hashlib.sha256(f"{kind}-key-id:".encode() + key.encode()).hexdigest()[:16]


def keys_dir(var_dir: Path) -> Path:
    return var_dir / "keys"


def _write_new(path: Path, content: str) -> bool:
    """Create ``path`` with mode 0600 unless it exists; return whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(content + "\n")
    return True


def ensure_keys(var_dir: Path) -> list[Path]:
    """Create the missing key files; return the paths that were created."""
    directory = keys_dir(var_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = []
    for name, generate in GENERATORS.items():
        path = directory / name
        if _write_new(path, generate()):
            created.append(path)
    return created


def read_key_file(path: Path) -> list[str]:
    """The non-empty, non-comment lines of a key file, after checking its permissions."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path} does not exist: {HOW_TO_CREATE}.") from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run `chmod 600 {path}`."
        )
    lines = [
        line.strip()
        for line in path.read_text(encoding="ascii").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise KeyFileError(f"{path} is empty: restore it from backup or {HOW_TO_CREATE}.")
    return lines


def rotatable_key_file(var_dir: Path, file_name: str) -> Path:
    """The key file a rotation command rewrites, after checking the servers read it.

    When the matching environment variable is set the servers never look at the file, so
    adding a key to it would change nothing but the audit log.
    """
    variable = ENVIRONMENT_VARIABLES[file_name]
    path = keys_dir(var_dir) / file_name
    if os.environ.get(variable, "").strip():
        raise KeyFileError(
            f"{variable} is set in the environment, so the servers do not read {path}: "
            f"put the new key first in {variable} yourself, as docs/key-rotation.md describes "
            'under "Keys in environment variables".'
        )
    return path


@contextlib.contextmanager
def key_file_lock(path: Path) -> Iterator[None]:
    """Serialise rotations of key files, so that two at once cannot lose a key.

    The lock is on the keys directory itself: no lock file to leave behind, or to be left
    owned by root for the service's user to trip over.
    """
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        if os.name == "posix":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _keep_owner(path: Path, fd: int) -> None:
    """Give a replacement file the owner of the file it replaces: run as root, a rotation must
    not leave a key file that the service's own user can no longer read."""
    if os.name != "posix" or not path.exists():
        return
    info = path.stat()
    if (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid()):
        return
    # Only root may give a file away; anyone else rotating it already is its owner.
    with contextlib.suppress(PermissionError):
        os.fchown(fd, info.st_uid, info.st_gid)


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace ``path`` with ``keys``, one a line, newest first, atomically, mode 0600.

    The new content goes to a temporary file (mode 0600 from the start) in the same
    directory, which is then renamed over the old one: a process starting at that moment
    reads the old file or the new one, never half of either. Comment lines of the old file
    are kept at the top.
    """
    if not keys or any(not key or key != key.strip() or "," in key for key in keys):
        raise KeyFileError(f"Refusing to write {path}: a key is empty or contains a comma.")
    comments = []
    if path.exists():
        comments = [
            line
            for line in path.read_text(encoding="ascii").splitlines()
            if line.lstrip().startswith("#")
        ]
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        _keep_owner(path, fd)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("".join(f"{line}\n" for line in [*comments, *keys]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        # The rename itself must reach the disk, or a crash could bring the old file back.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def replace_keys_and_record(path: Path, keys: list[str], previous: list[str], record: Callable):
    """Write ``keys`` to ``path`` and record the rotation's audit event: both or neither.

    ``record`` runs first, inside a database transaction; the file is replaced before the
    commit, and put back as ``previous`` if the commit fails. Returns what ``record`` returns.
    """
    written = False
    try:
        with transaction.atomic():
            result = record()
            write_key_file(path, keys)
            written = True
    except BaseException:
        if written:
            write_key_file(path, previous)
        raise
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the server's missing key files.")
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var"),
        help="state directory (default: VAR_DIR or ./var)",
    )
    args = parser.parse_args(argv)
    created = ensure_keys(args.var_dir)
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"key files in {keys_dir(args.var_dir)} already present; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
