"""The database side of a backup: dumping the settings' database into one file and
restoring such a file into it.

SQLite goes through its online backup API; PostgreSQL through ``pg_dump -Fc`` and
``pg_restore``, of a major version no older than the server's, given the password in a
private passfile rather than on a command line. The checks a restore makes of the
database before it changes anything (migrations it knows, other connections, data it
would replace) live here as well.
"""

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from psycopg import conninfo, pq

from audit.models import AuditEvent
from chat.models import Conversation
from project.backup.archive import Archive
from project.backup.errors import BackupError

# Debian and Ubuntu install each PostgreSQL major version's tools here, side by side.
POSTGRES_LIB = Path("/usr/lib/postgresql")
# libpq parameters that are secrets: never on a command line, where `ps` shows them.
SECRET_LIBPQ_PARAMETERS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)


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


def server_major() -> int:
    return connection.pg_version // 10000


def server_version() -> str:
    if connection.vendor == "postgresql":
        return f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
    return sqlite3.sqlite_version


# --- The database -------------------------------------------------------------------------


def connect() -> None:
    """Open the settings' database connection, or say why it cannot be opened."""
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
    state: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        state.setdefault(app, []).append(name)
    return state


def known_migrations() -> set[tuple[str, str]]:
    return set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def pending_migrations() -> list[str]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def dump_sqlite(target: Path) -> tuple[str, int | None]:
    destination = sqlite3.connect(target)
    try:
        # The online backup API copies one consistent state while others keep writing.
        connection.connection.backup(destination)
        # A self-contained file: the copy needs no -wal file beside it.
        destination.execute("PRAGMA journal_mode=DELETE")
    finally:
        destination.close()
    return f"the sqlite3 backup API (SQLite {sqlite3.sqlite_version})", None


def dump_postgres(target: Path) -> tuple[str, int | None]:
    tool, major = postgres_tool("pg_dump", server_major())
    dsn, password = _libpq_connection()
    with _libpq_environment(password) as environment:
        # Custom format: compressed, restorable with pg_restore, taken from one snapshot.
        _run_tool(
            [str(tool), "--format=custom", f"--file={target}", f"--dbname={dsn}"],
            environment,
            "pg_dump failed",
        )
    return f"pg_dump {major} ({tool})", major


def restore_sqlite(dump: Path) -> str:
    source = sqlite3.connect(dump)
    try:
        # The backup API in reverse: page by page under the database's own lock, so the
        # file is never half replaced; the connection stays in its journal mode.
        source.backup(connection.connection)
    finally:
        source.close()
    return f"the sqlite3 backup API (SQLite {sqlite3.sqlite_version})"


def restore_postgres(dump: Path, archive: Archive) -> str:
    written_by = archive.manifest.get("database", {}).get("dump_major") or 0
    tool, major = postgres_tool("pg_restore", server_major(), at_least=written_by)
    dsn, password = _libpq_connection()
    # pg_restore drops and recreates the tables; this process must not hold them open.
    _close_own_connections()
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


def _close_own_connections() -> None:
    """Close this process's connection, and its connection pool where it has one (a pooled
    connection that is closed only goes back to the pool, still open)."""
    connection.close()
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()


def refuse_other_connections() -> None:
    """A server still connected would write into the tables being replaced, or hold a lock
    that pg_restore would wait on without limit (the dump sets lock_timeout to 0).

    Counted from a connection of its own, outside the pool, once this process's pool is
    closed: the pool's own idle connections are not others."""
    import psycopg

    _close_own_connections()
    parameters = connection.get_connection_params()
    with psycopg.connect(**parameters) as own, own.cursor() as cursor:
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
    tables = set(connection.introspection.table_names())
    counts = {}
    for label, model in (
        ("users", get_user_model()),
        ("conversations", Conversation),
        ("audit events", AuditEvent),
    ):
        counts[label] = model.objects.count() if model._meta.db_table in tables else 0
    return counts
