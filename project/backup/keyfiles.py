"""What backups and restores do with the key files of ``VAR_DIR/keys``.

A backup reads the keys in use; a restore checks that the keys the site would use after it
fit the database archive, then puts the key archive's files back without destroying any key.

Nothing here needs Django, so ``python -m project.backup restore-keys`` can use it on a
machine that has no keys yet.
"""

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.env import env_list
from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    ENVIRONMENT_VARIABLES,
    KeyFileError,
    key_id,
    keys_dir,
    read_key_file,
)
from project.backup.archive import (
    DATA_KEY_MEMBER_PREFIX,
    KEY_FILES,
    KEY_MEMBER_PREFIX,
    Archive,
    fsync_directory,
    utc_now,
)
from project.backup.errors import BackupError

# Keys whose ids the database archive records: the data in it needs one of each to be read.
KEY_ID_KINDS = {CHAT_KEYRING_FILE: "chat", AUDIT_HMAC_KEY_FILE: "audit"}


def data_key_dir(var_dir: Path) -> Path:
    """The per-user data key store, where settings.py puts it (DATA_KEY_DIR)."""
    configured = os.environ.get("DATA_KEY_DIR", "").strip()
    return Path(configured) if configured else keys_dir(var_dir) / "data"


# --- Keys in use --------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySource:
    """Where one key file's keys come from (its variable, when set, wins over its file), and
    the keys themselves, newest first."""

    variable: str | None
    path: Path
    lines: list[str]


def keys_in_use(var_dir: Path) -> dict[str, KeySource]:
    """Each key as the settings read it: from its environment variable when that is set,
    otherwise from its file under ``var_dir/keys``."""
    sources = {}
    for name in KEY_FILES:
        variable = ENVIRONMENT_VARIABLES[name]
        path = keys_dir(var_dir) / name
        from_environment = env_list(variable, [])
        if from_environment:
            sources[name] = KeySource(variable, path, from_environment)
        else:
            sources[name] = KeySource(None, path, read_key_file(path))
    return sources


# --- Key files ----------------------------------------------------------------------------


def _lines_or_none(path: Path) -> list[str] | None:
    try:
        return read_key_file(path)
    except (KeyFileError, OSError, UnicodeDecodeError):
        return None


@dataclass
class KeyRestore:
    """What putting the key files back did, file by file."""

    directory: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_as: dict[str, str] = field(default_factory=dict)
    data_keys_written: int = 0
    data_keys_present: int = 0


def _key_files_of(archive: Archive) -> dict[str, Path]:
    return {
        name.removeprefix(KEY_MEMBER_PREFIX): path
        for name, path in archive.files.items()
        if name.startswith(KEY_MEMBER_PREFIX)
    }


def _data_keys_of(archive: Archive) -> dict[str, Path]:
    return {
        name.removeprefix(DATA_KEY_MEMBER_PREFIX): path
        for name, path in archive.files.items()
        if name.startswith(DATA_KEY_MEMBER_PREFIX)
    }


def _restore_data_keys(archive: Archive, store: Path, result: "KeyRestore") -> None:
    """Put back the archive's data keys that the store lacks. A key the store holds stays as
    it is: it is the same key (rewrapped since, perhaps) or a newer one under that name."""
    for name, source in sorted(_data_keys_of(archive).items()):
        target = store / name
        if target.exists():
            result.data_keys_present += 1
            continue
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(source.read_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, target)
            except FileExistsError:
                result.data_keys_present += 1
                continue
        finally:
            Path(temporary).unlink(missing_ok=True)
        fsync_directory(target.parent)
        result.data_keys_written += 1


def differing_key_files(archive: Archive, var_dir: Path) -> list[Path]:
    """Existing key files that hold other keys than the archive's."""
    directory = keys_dir(var_dir)
    return [
        directory / name
        for name, source in _key_files_of(archive).items()
        if (directory / name).exists() and _lines_or_none(directory / name) != read_key_file(source)
    ]


def refuse_other_keys(archive: Archive, differing: list[Path]) -> None:
    if differing:
        names = ", ".join(str(path) for path in differing)
        raise BackupError(
            f"{names} already {'holds' if len(differing) == 1 else 'hold'} other keys than "
            f"{archive.path.name}. Run again with --yes to replace "
            f"{'it' if len(differing) == 1 else 'them'} (a replaced file is kept beside it "
            "as <name>.replaced-<time>), or restore into another VAR_DIR."
        )


def restore_key_files(
    archive: Archive, var_dir: Path, *, overwrite: bool, data_key_store: Path | None = None
) -> KeyRestore:
    """Put the archive's key files into ``var_dir/keys`` (directory 0700, files 0600).

    A file that holds the same keys is left alone. One that holds other keys is replaced
    only with ``overwrite``, and then kept beside it as ``<name>.replaced-<UTC time>``: a key
    is the only way into what it encrypted, so none is ever destroyed here.
    """
    differing = differing_key_files(archive, var_dir)
    if not overwrite:
        refuse_other_keys(archive, differing)
    directory = keys_dir(var_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = KeyRestore(directory)
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    for name, source in sorted(_key_files_of(archive).items()):
        target = directory / name
        if target.exists() and target not in differing:
            result.unchanged.append(name)
            continue
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".restoring", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(source.read_bytes())
                handle.flush()
                os.fsync(handle.fileno())
            if target.exists():
                kept = f"{name}.replaced-{stamp}"
                os.link(target, directory / kept)
                result.kept_as[name] = kept
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        result.written.append(name)
    fsync_directory(directory)
    _restore_data_keys(archive, data_key_store or data_key_dir(var_dir), result)
    return result


def describe_key_restore(result: KeyRestore) -> list[str]:
    parts = []
    if result.written:
        parts.append(f"restored {', '.join(result.written)}")
    if result.unchanged:
        parts.append(f"already in place: {', '.join(result.unchanged)}")
    lines = [f"Key files in {result.directory}: {'; '.join(parts)} (mode 0600)."]
    if result.data_keys_written or result.data_keys_present:
        lines.append(
            f"Data keys: {result.data_keys_written} restored, {result.data_keys_present} "
            "already in the key store."
        )
    lines += [f"The {name} it replaced is kept as {kept}." for name, kept in result.kept_as.items()]
    lines += [
        f"Note: {ENVIRONMENT_VARIABLES[name]} is set in the environment and wins over "
        f"{result.directory / name}."
        for name in KEY_FILES
        if env_list(ENVIRONMENT_VARIABLES[name], [])
    ]
    return lines


# --- Keys that fit a database archive -----------------------------------------------------


def check_keys_fit(database: Archive, keys: Archive | None, var_dir: Path) -> None:
    """Refuse before anything changes when the keys the site would use after the restore
    cannot read the archive's conversations or verify its audit log."""
    recorded = database.manifest.get("key_ids") or {}
    archive_keys = _key_files_of(keys) if keys else {}
    for name, kind in KEY_ID_KINDS.items():
        variable = ENVIRONMENT_VARIABLES[name]
        from_environment = env_list(variable, [])
        if from_environment:
            lines, source = from_environment, f"{variable} in the environment"
        elif name in archive_keys:
            lines, source = read_key_file(archive_keys[name]), f"from {keys.path.name}"
        else:
            path = keys_dir(var_dir) / name
            lines, source = _lines_or_none(path) or [], str(path)
        wanted = set(recorded.get(name) or [])
        if not wanted or wanted & {key_id(kind, key) for key in lines}:
            continue
        pair = database.manifest.get("key_archive") or "the key archive written with it"
        if kind == "chat":
            problem = (
                f"The chat keyring the restored site would use ({source}) holds none of the "
                f"keys that encrypted the conversations in {database.path.name}, so they "
                "could not be read."
            )
        else:
            problem = (
                f"The audit key the restored site would use ({source}) is none of the keys "
                f"that signed the audit log in {database.path.name}, so it would fail "
                "verification."
            )
        raise BackupError(f"{problem} Restore with --keys {pair} (or a later key archive).")
