"""``python -m project.backup restore-keys``: the key files back from a key archive,
without Django.

A machine that has no keys yet cannot load the settings, so ``manage.py`` cannot start
there; this command needs only the archive format and the key files, and then points the
operator at ``manage.py restore`` for the database.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from project.backup.archive import KEY_ARCHIVE, read_archive
from project.backup.errors import BackupError
from project.backup.keyfiles import describe_key_restore, restore_key_files

# The checkout's var directory, as settings.py defaults VAR_DIR to BASE_DIR / "var".
DEFAULT_VAR_DIR = Path(__file__).resolve().parents[2] / "var"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m project.backup",
        description="Put key files back from a key archive, without Django (for a machine "
        "with no keys yet); then run `manage.py restore` for the database.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    restore_keys = commands.add_parser("restore-keys", help="restore VAR_DIR/keys")
    restore_keys.add_argument("archive", type=Path, help="a chat-keys-<time>.tar file")
    restore_keys.add_argument(
        "--var-dir",
        type=Path,
        default=Path(os.environ.get("VAR_DIR") or DEFAULT_VAR_DIR),
        help="state directory (default: VAR_DIR or ./var)",
    )
    restore_keys.add_argument(
        "--yes", "--force", dest="yes", action="store_true", help="replace differing key files"
    )
    args = parser.parse_args(argv)
    args.var_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=args.var_dir) as work:
            archive = read_archive(args.archive, KEY_ARCHIVE, Path(work))
            result = restore_key_files(archive, args.var_dir, overwrite=args.yes)
    except BackupError as exc:
        print(f"restore-keys: {exc}", file=sys.stderr)
        return 1
    for line in describe_key_restore(result):
        print(line)
    print("Next: `python manage.py restore DATABASE_ARCHIVE` (docs/backup.md).")
    return 0
