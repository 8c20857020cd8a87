"""Secrets the server needs, kept in files outside the database.

``python -m project.keys`` creates whatever is missing under ``VAR_DIR/keys`` (``make run``
and ``make test`` call it). A file that exists is never rewritten: regenerating the chat
keyring would make every stored conversation unreadable, and regenerating the audit key
would break the verification of the audit chain. Rotation is a separate, deliberate step.

Files are created with mode 0600 in a directory of mode 0700, and are refused at start-up
if other users can read them.
"""

import argparse
import base64
import os
import secrets
import stat
import sys
from pathlib import Path

SECRET_KEY_FILE = "django_secret_key"  # noqa: S105 (a file name, not a secret)
CHAT_KEYRING_FILE = "chat_keyring"
AUDIT_HMAC_KEY_FILE = "audit_hmac_key"

HOW_TO_CREATE = "run `make run`, or `python -m project.keys` to create only the key files"


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
