"""Backups of the database and, in a separate archive, of the key files; and putting them back.

``manage.py backup`` writes two tar files (docs/backup.md):

- the database archive, ``chat-db-<UTC time>.tar``: a consistent copy of the database
  (``pg_dump -Fc``, which reads one snapshot; or SQLite's online backup API). It holds chat
  content only as Fernet tokens and no key, so on its own it reveals no conversation.
- the key archive, ``chat-keys-<UTC time>.tar``: the key files of ``VAR_DIR/keys`` (mode
  0600). Keys given in environment variables are not in it; the output says so.

Each carries ``manifest.json``: format version, kind, creation time, database vendor,
migration state, app version, non-secret ids of the keys in use, and the sha256 of every
member, so that ``manage.py restore`` can refuse a damaged or mismatched archive before it
changes anything.

``python -m project.backup restore-keys KEY_ARCHIVE`` puts the key files back without
Django, for a machine that has none yet (the settings cannot load without keys, so
``manage.py`` cannot start there).
"""

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from core.env import env_list
from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    ENVIRONMENT_VARIABLES,
    GENERATORS,
    SECRET_KEY_FILE,
    KeyFileError,
    key_id,
    keys_dir,
    read_key_file,
)

FORMAT = "intranet-llm-chat backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_ARCHIVE = "database"
KEY_ARCHIVE = "keys"
DATABASE_MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
KEY_MEMBER_PREFIX = "keys/"
KEY_FILES = tuple(GENERATORS)
# Keys whose ids the database archive records: the data in it needs one of each to be read.
KEY_ID_KINDS = {CHAT_KEYRING_FILE: "chat", AUDIT_HMAC_KEY_FILE: "audit"}
APP_DISTRIBUTION = "intranet-llm-chat"
# Debian and Ubuntu install each PostgreSQL major version's tools here, side by side.
POSTGRES_LIB = Path("/usr/lib/postgresql")
# libpq parameters that are secrets: never on a command line, where `ps` shows them.
SECRET_LIBPQ_PARAMETERS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says what to do instead."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def app_version() -> str:
    try:
        return metadata.version(APP_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


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


def _fsync_directory(directory: Path) -> None:
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
    _fsync_directory(path.parent)
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


KIND_NAMES = {DATABASE_ARCHIVE: "a database archive", KEY_ARCHIVE: "a key archive"}


def _allowed_members(manifest: dict) -> set[str]:
    if manifest.get("kind") == DATABASE_ARCHIVE:
        vendor = manifest.get("database", {}).get("vendor")
        return {DATABASE_MEMBERS[vendor]} if vendor in DATABASE_MEMBERS else set()
    return {KEY_MEMBER_PREFIX + name for name in KEY_FILES}


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
            allowed = _allowed_members(manifest)
            if (
                not isinstance(listed, dict)
                or not present
                or set(listed) != present
                or not present <= allowed
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


def _key_files_of(archive: Archive) -> dict[str, Path]:
    return {name.removeprefix(KEY_MEMBER_PREFIX): path for name, path in archive.files.items()}


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


def restore_key_files(archive: Archive, var_dir: Path, *, overwrite: bool) -> KeyRestore:
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
    _fsync_directory(directory)
    return result


# --- PostgreSQL tools ---------------------------------------------------------------------


def _tool_major(tool: Path) -> int | None:
    try:
        completed = subprocess.run(  # noqa: S603 (a PostgreSQL tool found below, fixed argument)
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    match = re.search(r"\)\s*(\d+)", completed.stdout)
    return int(match.group(1)) if completed.returncode == 0 and match else None


def postgres_tool(
    name: str, server_major: int, *, at_least: int = 0, lib_root: Path = POSTGRES_LIB
) -> tuple[Path, int]:
    """``pg_dump`` or ``pg_restore`` for a server of ``server_major``, and its major version.

    The server's own version under /usr/lib/postgresql comes first, then PATH. A tool older
    than the server (or than ``at_least``) is refused: pg_dump cannot read a newer server,
    and pg_restore cannot read an archive written by a newer pg_dump.
    """
    needed = max(server_major, at_least)
    candidates = [lib_root / str(server_major) / "bin" / name]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    too_old = []
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        major = _tool_major(candidate)
        if major is not None and major >= needed:
            return candidate, major
        too_old.append(f"{candidate} is version {major if major is not None else 'unknown'}")
    install = (
        f"install the PostgreSQL {needed} client tools (Debian/Ubuntu: "
        f"`apt install postgresql-client-{needed}`)"
    )
    if too_old:
        raise BackupError(
            f"{name} must be version {needed} or later for this database, but "
            f"{'; '.join(too_old)}: {install}."
        )
    raise BackupError(
        f"{name} was not found in {lib_root / str(server_major) / 'bin'} or on PATH: {install}."
    )


def _libpq_connection() -> tuple[str, str]:
    """The database of the settings as a libpq connection string without secrets, and its
    password (empty when there is none)."""
    from django.db import connection
    from psycopg import conninfo, pq

    keywords = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    parameters = connection.get_connection_params()
    password = str(parameters.pop("password", "") or "")
    secrets = sorted(SECRET_LIBPQ_PARAMETERS & set(parameters))
    if secrets:
        raise BackupError(
            f"The database settings set {', '.join(secrets)}, which pg_dump and pg_restore "
            "could only be given on their command line, visible to every user: use a "
            "client key without passphrase, readable by this account only, instead."
        )
    chosen = {
        key: str(value)
        for key, value in parameters.items()
        if key in keywords and value not in (None, "")
    }
    return conninfo.make_conninfo(**chosen), password


def _passfile_line(password: str) -> str:
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n"


@contextlib.contextmanager
def _libpq_environment(password: str) -> Iterator[dict[str, str]]:
    """The environment for a PostgreSQL tool: the password in a private, temporary
    passfile (PostgreSQL's advice over PGPASSWORD), removed afterwards."""
    environment = {
        key: value for key, value in os.environ.items() if key not in {"PGPASSWORD", "PGPASSFILE"}
    }
    with tempfile.TemporaryDirectory(prefix="chat-pg-") as private:
        if password:
            passfile = Path(private) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(_passfile_line(password))
            environment["PGPASSFILE"] = str(passfile)
        yield environment


def _run_tool(arguments: list[str], environment: dict[str, str], what: str) -> None:
    completed = subprocess.run(  # noqa: S603 (a PostgreSQL tool chosen by postgres_tool)
        arguments, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()[-3:]
        raise BackupError(f"{what} (exit {completed.returncode}): {' '.join(detail)}")


def _server_major() -> int:
    from django.db import connection

    return connection.pg_version // 10000


def _server_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
    return sqlite3.sqlite_version


# --- The database -------------------------------------------------------------------------


def connect() -> None:
    """Open the settings' database connection, or say why it cannot be opened."""
    from django.db import DatabaseError, connection

    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        what_to_check = (
            "DATABASE_URL and that PostgreSQL is running"
            if connection.vendor == "postgresql"
            else "that VAR_DIR exists and this account may write to it"
        )
        raise BackupError(
            f"Cannot connect to the {connection.vendor} database ({exc}). "
            f"Check {what_to_check}, then try again."
        ) from None


def applied_migrations() -> dict[str, list[str]]:
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    state: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        state.setdefault(app, []).append(name)
    return state


def _known_migrations() -> set[tuple[str, str]]:
    from django.db.migrations.loader import MigrationLoader

    return set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def _pending_migrations() -> list[str]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def _dump_sqlite(target: Path) -> tuple[str, int | None]:
    from django.db import connection

    destination = sqlite3.connect(target)
    try:
        # The online backup API copies one consistent state while others keep writing.
        connection.connection.backup(destination)
        # A self-contained file: the copy needs no -wal file beside it.
        destination.execute("PRAGMA journal_mode=DELETE")
    finally:
        destination.close()
    return f"the sqlite3 backup API (SQLite {sqlite3.sqlite_version})", None


def _dump_postgres(target: Path) -> tuple[str, int | None]:
    tool, major = postgres_tool("pg_dump", _server_major())
    dsn, password = _libpq_connection()
    with _libpq_environment(password) as environment:
        # Custom format: compressed, restorable with pg_restore, taken from one snapshot.
        _run_tool(
            [str(tool), "--format=custom", f"--file={target}", f"--dbname={dsn}"],
            environment,
            "pg_dump failed",
        )
    return f"pg_dump {major} ({tool})", major


def _restore_sqlite(dump: Path) -> str:
    from django.db import connection

    source = sqlite3.connect(dump)
    try:
        # The backup API in reverse: page by page under the database's own lock, so the
        # file is never half replaced; the connection stays in its journal mode.
        source.backup(connection.connection)
    finally:
        source.close()
    return f"the sqlite3 backup API (SQLite {sqlite3.sqlite_version})"


def _restore_postgres(dump: Path, archive: Archive) -> str:
    from django.db import connection

    written_by = archive.manifest.get("database", {}).get("dump_major") or 0
    tool, major = postgres_tool("pg_restore", _server_major(), at_least=written_by)
    dsn, password = _libpq_connection()
    # pg_restore drops and recreates the tables; this process must not hold them open.
    connection.close()
    with _libpq_environment(password) as environment:
        _run_tool(
            [
                str(tool),
                "--clean",
                "--if-exists",
                # Objects belong to the account that restores them, whatever account owned
                # them before; grants would name roles this server may not have.
                "--no-owner",
                "--no-privileges",
                # All or nothing: a failure leaves the database as it was.
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={dsn}",
                str(dump),
            ],
            environment,
            "pg_restore failed and left the database as it was",
        )
    return f"pg_restore {major} ({tool})"


def _refuse_other_connections() -> None:
    """A server still connected would write into the tables being replaced, or hold a lock
    that pg_restore would wait on without limit (the dump sets lock_timeout to 0)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        (others,) = cursor.fetchone()
    if others:
        raise BackupError(
            f"{others} other connection{'s are' if others > 1 else ' is'} open to the "
            "database: stop the web processes and inference workers (and close any psql "
            "session on it), then run the restore again."
        )


def existing_data() -> dict[str, int]:
    """Rows that a restore would replace: accounts, conversations and audit events."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from audit.models import AuditEvent
    from chat.models import Conversation

    tables = set(connection.introspection.table_names())
    counts = {}
    for label, model in (
        ("users", get_user_model()),
        ("conversations", Conversation),
        ("audit events", AuditEvent),
    ):
        counts[label] = model.objects.count() if model._meta.db_table in tables else 0
    return counts


# --- Backup -------------------------------------------------------------------------------


@dataclass
class BackupResult:
    database_archive: Path
    database_sha256: str
    vendor: str
    key_archive: Path | None
    key_files: list[str]
    from_environment: list[str]


def backup(*, output_dir: Path, keys_output_dir: Path, with_keys: bool) -> BackupResult:
    """Write the database archive into ``output_dir`` and, unless ``with_keys`` is false,
    the key archive into ``keys_output_dir``."""
    from django.conf import settings
    from django.db import connection

    connect()
    migrations = applied_migrations()
    if not migrations:
        raise BackupError(
            "The database holds no tables of this site, so there is nothing to back up: "
            "check DATABASE_URL (or VAR_DIR), or run `manage.py migrate` first."
        )
    keys = keys_in_use(settings.VAR_DIR)
    in_files = [name for name, source in keys.items() if not source.variable]
    from_environment = [source.variable for source in keys.values() if source.variable]
    created = utc_now()
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    database_archive = output_dir / f"chat-db-{stamp}.tar"
    key_archive = keys_output_dir / f"chat-keys-{stamp}.tar" if with_keys and in_files else None
    vendor = connection.vendor
    common = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created.isoformat(timespec="seconds"),
        "app_version": app_version(),
    }
    output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The dump waits beside its archive, on the same disk, readable by this account only.
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=output_dir) as work:
        dump = Path(work) / DATABASE_MEMBERS[vendor]
        tool, dump_major = _dump_sqlite(dump) if vendor == "sqlite" else _dump_postgres(dump)
        manifest = {
            **common,
            "kind": DATABASE_ARCHIVE,
            "database": {
                "vendor": vendor,
                "server_version": _server_version(),
                "dumped_with": tool,
                **({"dump_major": dump_major} if dump_major else {}),
            },
            "migrations": migrations,
            "key_ids": {
                name: [key_id(kind, key) for key in keys[name].lines]
                for name, kind in KEY_ID_KINDS.items()
            },
            "key_archive": key_archive.name if key_archive else None,
        }
        sha256 = write_archive(database_archive, manifest, {dump.name: dump}, created)

    if key_archive is not None:
        members = {KEY_MEMBER_PREFIX + name: keys[name].path for name in in_files}
        manifest = {**common, "kind": KEY_ARCHIVE, "not_included": from_environment}
        write_archive(key_archive, manifest, members, created)
    return BackupResult(
        database_archive,
        sha256,
        vendor,
        key_archive,
        in_files if key_archive else [],
        from_environment,
    )


# --- Restore ------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    database: Archive
    keys: KeyRestore | None
    applied_migrations: list[str]
    counts: dict[str, int]
    problems: list[str]
    checks: list[str]
    event_sequence: int | None = None


def _check_keys_fit(database: Archive, keys: Archive | None, var_dir: Path) -> None:
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


def _use_restored_keys(var_dir: Path) -> None:
    """Point the settings at the key files just restored, as settings.py would read them.

    The settings were read when this process started, before the files came back; the
    check and the audit event below must use the keys that the next server start will use.
    """
    from django.conf import settings

    keys = keys_in_use(var_dir)
    secret_keys = keys[SECRET_KEY_FILE].lines
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = secret_keys[0], secret_keys[1:]
    settings.CHAT_KEYRING = keys[CHAT_KEYRING_FILE].lines
    settings.AUDIT_HMAC_KEYS = keys[AUDIT_HMAC_KEY_FILE].lines


def _check_restored_site(result: RestoreResult) -> None:
    from audit.chain import verify
    from chat.models import Message
    from core import crypto

    try:
        crypto.check_keyring_opens_stored_data()
    except crypto.DecryptionError as exc:
        result.problems.append(str(exc))
    else:
        result.counts["messages"] = Message.objects.count()
        held = ", ".join(f"{label}: {count}" for label, count in result.counts.items())
        result.checks.append(f"Keyring check: the chat keyring opens the stored data ({held}).")
    verdict = verify()
    if verdict.intact:
        result.checks.append(f"Audit check: {verdict.summary()}")
    else:
        result.problems.append(verdict.summary())


def restore(
    archive_path: Path,
    *,
    key_archive_path: Path | None,
    overwrite: bool,
    say: Callable[[str], None] = lambda line: None,
) -> RestoreResult:
    """Put a database archive (and optionally a key archive) back, then check the result.

    Every refusal (a damaged or mismatched archive, data that would be replaced, other key
    files, keys that cannot read the archive) comes before anything is changed.
    """
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=var_dir) as work:
        database = read_archive(archive_path, DATABASE_ARCHIVE, Path(work) / "database")
        keys = (
            read_archive(key_archive_path, KEY_ARCHIVE, Path(work) / "keys")
            if key_archive_path
            else None
        )
        say(
            f"{archive_path.name}: a {database.vendor} database archive made "
            f"{database.created_at} by version {database.manifest.get('app_version')}; "
            "every member matches its checksum."
        )
        if database.vendor != connection.vendor:
            configured = "DATABASE_URL" if connection.vendor == "postgresql" else "no DATABASE_URL"
            raise BackupError(
                f"{archive_path.name} holds a {database.vendor} database, but this site uses "
                f"{connection.vendor} ({configured}): restore it into a site configured for "
                "the same database."
            )
        archived = {
            (app, name)
            for app, names in (database.manifest.get("migrations") or {}).items()
            for name in names
        }
        unknown = sorted(f"{app}.{name}" for app, name in archived - _known_migrations())
        if unknown:
            raise BackupError(
                f"{archive_path.name} was made by a later version "
                f"({database.manifest.get('app_version')}): this one does not know its "
                f"migrations {', '.join(unknown)}. Install that version, then restore."
            )
        _check_keys_fit(database, keys, var_dir)
        if keys is not None and not overwrite:
            refuse_other_keys(keys, differing_key_files(keys, var_dir))
        connect()
        if database.vendor == "postgresql":
            postgres_tool(
                "pg_restore",
                _server_major(),
                at_least=database.manifest.get("database", {}).get("dump_major") or 0,
            )
            _refuse_other_connections()
        present = existing_data()
        if any(present.values()) and not overwrite:
            held = ", ".join(f"{label}: {count}" for label, count in present.items())
            raise BackupError(
                f"The database already holds data ({held}), which the restore would replace. "
                "Run again with --yes to replace it, or restore into an empty database."
            )

        dump = database.files[DATABASE_MEMBERS[database.vendor]]
        restored_with = (
            _restore_sqlite(dump)
            if database.vendor == "sqlite"
            else _restore_postgres(dump, database)
        )
        say(f"Restored the database with {restored_with}.")
        key_result = None
        if keys is not None:
            key_result = restore_key_files(keys, var_dir, overwrite=overwrite)
            _use_restored_keys(var_dir)

    pending = _pending_migrations()
    if pending:
        # An archive from an earlier version: the code needs its later tables and columns
        # before it can read the data, as after any upgrade.
        call_command("migrate", interactive=False, verbosity=0)
    result = RestoreResult(
        database=database,
        keys=key_result,
        applied_migrations=pending,
        counts=existing_data(),
        problems=[],
        checks=[],
    )
    _check_restored_site(result)
    return result


def record_restore(result: RestoreResult, key_archive_path: Path | None) -> None:
    """The audit event of a restore, written into the restored chain with the restored key."""
    from audit.log import record
    from audit.models import AuditEvent

    archives = [result.database.path.name] + ([key_archive_path.name] if key_archive_path else [])
    event = record(
        "backup.restored",
        outcome=AuditEvent.Outcome.FAILURE if result.problems else AuditEvent.Outcome.SUCCESS,
        archives=archives,
        vendor=result.database.vendor,
        archive_created_at=result.database.created_at,
        restored_files=result.keys.written if result.keys else [],
        migrations_applied=len(result.applied_migrations),
        problem_count=len(result.problems),
    )
    result.event_sequence = event.sequence


def record_failure(action: str, problem: str) -> None:
    """Best effort: a refused or failed backup or restore, in the audit log of the database
    as it is. When that database is unreachable or empty there is nowhere to write it."""
    from django.db import DatabaseError

    from audit.log import record
    from audit.models import AuditEvent

    with contextlib.suppress(DatabaseError):
        record(action, outcome=AuditEvent.Outcome.FAILURE, problem=problem[:500])


# --- python -m project.backup restore-keys ------------------------------------------------


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
        default=Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var"),
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


def describe_key_restore(result: KeyRestore) -> list[str]:
    parts = []
    if result.written:
        parts.append(f"restored {', '.join(result.written)}")
    if result.unchanged:
        parts.append(f"already in place: {', '.join(result.unchanged)}")
    lines = [f"Key files in {result.directory}: {'; '.join(parts)} (mode 0600)."]
    lines += [f"The {name} it replaced is kept as {kept}." for name, kept in result.kept_as.items()]
    lines += [
        f"Note: {ENVIRONMENT_VARIABLES[name]} is set in the environment and wins over "
        f"{result.directory / name}."
        for name in KEY_FILES
        if env_list(ENVIRONMENT_VARIABLES[name], [])
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
