"""Backup and restore as ``manage.py backup`` and ``manage.py restore`` run them.

``backup()`` writes the database archive and, apart from it, the key archive;
``restore()`` refuses a damaged or mismatched archive before it changes anything, puts the
database (and the key files) back, and checks that the keyring opens the stored data and
that the audit chain verifies. ``record_restore()`` and ``record_failure()`` write the
audit events of both commands.
"""

import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection

from audit.chain import verify
from audit.log import record
from audit.models import AuditEvent
from chat.models import Message
from core import crypto, datakeys
from core.keys import AUDIT_HMAC_KEY_FILE, CHAT_KEYRING_FILE, SECRET_KEY_FILE, key_id
from project.backup import database as db
from project.backup.archive import (
    DATA_KEY_MEMBER_PREFIX,
    DATABASE_ARCHIVE,
    DATABASE_MEMBERS,
    FORMAT,
    FORMAT_VERSION,
    KEY_ARCHIVE,
    KEY_MEMBER_PREFIX,
    Archive,
    app_version,
    read_archive,
    utc_now,
    write_archive,
)
from project.backup.errors import BackupError
from project.backup.keyfiles import (
    KEY_ID_KINDS,
    KeyRestore,
    check_keys_fit,
    differing_key_files,
    keys_in_use,
    refuse_other_keys,
    restore_key_files,
)

# --- Backup -------------------------------------------------------------------------------


@dataclass
class BackupResult:
    database_archive: Path
    database_sha256: str
    vendor: str
    key_archive: Path | None
    key_files: list[str]
    from_environment: list[str]
    data_key_count: int = 0


def backup(*, output_dir: Path, keys_output_dir: Path, with_keys: bool) -> BackupResult:
    """Write the database archive into ``output_dir`` and, unless ``with_keys`` is false,
    the key archive into ``keys_output_dir``."""
    db.connect()
    migrations = db.applied_migrations()
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
        tool, dump_major = db.dump_sqlite(dump) if vendor == "sqlite" else db.dump_postgres(dump)
        manifest = {
            **common,
            "kind": DATABASE_ARCHIVE,
            "database": {
                "vendor": vendor,
                "server_version": db.server_version(),
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

    data_keys = {}
    if key_archive is not None:
        store = datakeys.store_dir()
        data_keys = {
            DATA_KEY_MEMBER_PREFIX + path.relative_to(store).as_posix(): path
            for path in datakeys.key_files()
        }
        members = {KEY_MEMBER_PREFIX + name: keys[name].path for name in in_files}
        manifest = {**common, "kind": KEY_ARCHIVE, "not_included": from_environment}
        write_archive(key_archive, manifest, members | data_keys, created)
    return BackupResult(
        database_archive,
        sha256,
        vendor,
        key_archive,
        in_files if key_archive else [],
        from_environment,
        len(data_keys),
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


def _use_restored_keys(var_dir: Path) -> None:
    """Point the settings at the key files just restored, as settings.py would read them.

    The settings were read when this process started, before the files came back; the
    check and the audit event below must use the keys that the next server start will use.
    """
    keys = keys_in_use(var_dir)
    secret_keys = keys[SECRET_KEY_FILE].lines
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = secret_keys[0], secret_keys[1:]
    settings.CHAT_KEYRING = keys[CHAT_KEYRING_FILE].lines
    settings.AUDIT_HMAC_KEYS = keys[AUDIT_HMAC_KEY_FILE].lines


def _erased_check() -> str:
    """What of the restored database has no data key in the key store (conversations,
    documents with their files, passages and vectors: each app counts its own): it was erased
    after the backup was made, or the key store was not restored."""
    counts = datakeys.erased_counts()
    if not counts:
        return "Erasure check: everything sealed under a data key has its key."
    users = {user for by_user in counts.values() for user in by_user}
    things = [f"{sum(by_user.values())} {label}" for label, by_user in counts.items()]
    listed = things[0] if len(things) == 1 else f"{', '.join(things[:-1])} and {things[-1]}"
    return (
        f"Erasure check: {listed} of {len(users)} users show as erased: their data keys are "
        f"not in {datakeys.store_dir()} (erased after this backup was made, or the key store "
        "was not restored); they cannot be read. `manage.py reapply_erasures` removes what "
        "the key store notes as erased since."
    )


def _check_restored_site(result: RestoreResult) -> None:
    try:
        crypto.check_keyring_opens_stored_data()
    except crypto.DecryptionError as exc:
        result.problems.append(str(exc))
    else:
        result.counts["messages"] = Message.objects.count()
        held = ", ".join(f"{label}: {count}" for label, count in result.counts.items())
        result.checks.append(f"Keyring check: the chat keyring opens the stored data ({held}).")
        result.checks.append(_erased_check())
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
        unknown = sorted(f"{app}.{name}" for app, name in archived - db.known_migrations())
        if unknown:
            raise BackupError(
                f"{archive_path.name} was made by a later version "
                f"({database.manifest.get('app_version')}): this one does not know its "
                f"migrations {', '.join(unknown)}. Install that version, then restore."
            )
        check_keys_fit(database, keys, var_dir)
        if keys is not None and not overwrite:
            refuse_other_keys(keys, differing_key_files(keys, var_dir))
        db.connect()
        if database.vendor == "postgresql":
            db.postgres_tool(
                "pg_restore",
                db.server_major(),
                at_least=database.manifest.get("database", {}).get("dump_major") or 0,
            )
            db.refuse_other_connections()
        present = db.existing_data()
        if any(present.values()) and not overwrite:
            held = ", ".join(f"{label}: {count}" for label, count in present.items())
            raise BackupError(
                f"The database already holds data ({held}), which the restore would replace. "
                "Run again with --yes to replace it, or restore into an empty database."
            )

        dump = database.files[DATABASE_MEMBERS[database.vendor]]
        restored_with = (
            db.restore_sqlite(dump)
            if database.vendor == "sqlite"
            else db.restore_postgres(dump, database)
        )
        say(f"Restored the database with {restored_with}.")
        key_result = None
        if keys is not None:
            key_result = restore_key_files(
                keys, var_dir, overwrite=overwrite, data_key_store=datakeys.store_dir()
            )
            _use_restored_keys(var_dir)

    pending = db.pending_migrations()
    if pending:
        # An archive from an earlier version: the code needs its later tables and columns
        # before it can read the data, as after any upgrade.
        call_command("migrate", interactive=False, verbosity=0)
    result = RestoreResult(
        database=database,
        keys=key_result,
        applied_migrations=pending,
        counts=db.existing_data(),
        problems=[],
        checks=[],
    )
    _check_restored_site(result)
    return result


def record_restore(result: RestoreResult, key_archive_path: Path | None) -> None:
    """The audit event of a restore, written into the restored chain with the restored key."""
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
    with contextlib.suppress(DatabaseError):
        record(action, outcome=AuditEvent.Outcome.FAILURE, problem=problem[:500])
