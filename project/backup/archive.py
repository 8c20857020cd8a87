"""The backup archive format: a tar of members listed, with their sha256, in a manifest.

``write_archive`` writes one atomically; ``read_archive`` refuses anything that is not an
archive of the expected kind in a readable format version, or whose members differ from
their checksums, and copies the members into a private directory. Nothing here needs
Django, so ``python -m project.backup restore-keys`` can read a key archive without it.
"""

import datetime
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from core.keys import GENERATORS
from project.backup.errors import BackupError

FORMAT = "intranet-llm-chat backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_ARCHIVE = "database"
KEY_ARCHIVE = "keys"
DATABASE_MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
KEY_MEMBER_PREFIX = "keys/"
KEY_FILES = tuple(GENERATORS)
# Per-user data keys (core.datakeys): data-keys/<user id>/<scope>, wrapped by the keyring.
DATA_KEY_MEMBER_PREFIX = "data-keys/"
DATA_KEY_MEMBER = re.compile(r"^data-keys/[0-9]{1,20}/[a-z][a-z0-9-]{0,100}$")
APP_DISTRIBUTION = "intranet-llm-chat"
CHUNK = 1 << 20
KIND_NAMES = {DATABASE_ARCHIVE: "a database archive", KEY_ARCHIVE: "a key archive"}


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def app_version() -> str:
    try:
        return metadata.version(APP_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


# --- Writing archives ---------------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tar_entry(name: str, size: int, created: datetime.datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(created.timestamp())
    return info


def fsync_directory(directory: Path) -> None:
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_archive(
    path: Path, manifest: dict, members: dict[str, Path], created: datetime.datetime
) -> str:
    """Write the manifest and members as a tar at ``path`` (mode 0600); return its sha256.

    The tar is written to a temporary file beside ``path`` and linked into place only when
    complete, so a crash or a full disk never leaves a half archive under a final name, and
    an archive that exists is never replaced.
    """
    manifest = {
        **manifest,
        "members": {
            name: {"sha256": _sha256_of(source), "size": source.stat().st_size}
            for name, source in members.items()
        },
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
                entry = _tar_entry(MANIFEST, len(manifest_bytes), created)
                tar.addfile(entry, io.BytesIO(manifest_bytes))
                for name, source in members.items():
                    with source.open("rb") as content:
                        tar.addfile(_tar_entry(name, source.stat().st_size, created), content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise BackupError(
                f"{path} already exists and is left as it is: run the backup again in a "
                "second, or choose another --output directory."
            ) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    fsync_directory(path.parent)
    return _sha256_of(path)


# --- Reading archives ---------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """An archive whose members matched its manifest, copied out into a private directory."""

    path: Path
    manifest: dict
    files: dict[str, Path]

    @property
    def created_at(self) -> str:
        return self.manifest.get("created_at", "?")

    @property
    def vendor(self) -> str:
        return self.manifest.get("database", {}).get("vendor", "")


def _allowed_member(manifest: dict, name: str) -> bool:
    if manifest.get("kind") == DATABASE_ARCHIVE:
        vendor = manifest.get("database", {}).get("vendor")
        return vendor in DATABASE_MEMBERS and name == DATABASE_MEMBERS[vendor]
    return name in {KEY_MEMBER_PREFIX + key for key in KEY_FILES} or bool(
        DATA_KEY_MEMBER.match(name)
    )


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> tuple[str, int]:
    source = tar.extractfile(member)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def read_archive(path: Path, kind: str, workdir: Path) -> Archive:
    """Check ``path`` against its manifest and copy its members into ``workdir``.

    Refuses, with a sentence, anything that is not an archive of ``kind`` written by a
    version that this one can read, or whose members differ from their checksums.
    """
    if not path.is_file():
        raise BackupError(f"{path} does not exist or is not a file.")
    not_ours = (
        f"{path} is not a backup archive, or it is damaged: use a file written by "
        "`manage.py backup`, or another copy of it."
    )
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = {member.name: member for member in tar.getmembers()}
            if MANIFEST not in members or not members[MANIFEST].isreg():
                raise BackupError(not_ours)
            manifest = json.loads(tar.extractfile(members[MANIFEST]).read())
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise BackupError(not_ours)
            version = manifest.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise BackupError(
                    f"{path} is in backup format {version}, newer than the {FORMAT_VERSION} "
                    f"this version ({app_version()}) reads: restore it with the version that "
                    f"wrote it ({manifest.get('app_version', 'unknown')}) or a later one."
                )
            if manifest.get("kind") != kind:
                found = KIND_NAMES.get(manifest.get("kind"), "another kind of archive")
                hint = "pass it with --keys" if manifest.get("kind") == KEY_ARCHIVE else ""
                hint = hint or "give the database archive first and this one with --keys"
                raise BackupError(f"{path} is {found}, not {KIND_NAMES[kind]}: {hint}.")
            listed = manifest.get("members")
            present = set(members) - {MANIFEST}
            if (
                not isinstance(listed, dict)
                or not present
                or set(listed) != present
                or not all(_allowed_member(manifest, name) for name in present)
            ):
                raise BackupError(
                    f"{path} is damaged: its members do not match its manifest. "
                    "Use another copy of the archive."
                )
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            files = {}
            for name in sorted(present):
                member = members[name]
                if not member.isreg():
                    raise BackupError(f"{path} is damaged: {name} is not a plain file.")
                target = workdir / name.removeprefix(KEY_MEMBER_PREFIX)
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                sha256, size = _copy_member(tar, member, target)
                if sha256 != listed[name].get("sha256") or size != listed[name].get("size"):
                    raise BackupError(
                        f"{path} is damaged: {name} does not match the checksum in its "
                        "manifest. Use another copy of the archive."
                    )
                files[name] = target
    except (tarfile.TarError, EOFError, UnicodeDecodeError, json.JSONDecodeError):
        raise BackupError(not_ours) from None
    except OSError as exc:
        raise BackupError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    return Archive(path, manifest, files)
