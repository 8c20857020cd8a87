"""Throwaway Redis and PostgreSQL servers of the tests' own, on free loopback ports, that a
fault test may stop and start at will. The shared services on 6379 and 5432 are never
touched."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.support.server import free_port, stop_process

START_TIMEOUT_SECONDS = 30


def _wait_for(answers, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"{what} did not start within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}"
    )


class ThrowawayRedis:
    """``redis-server`` without persistence: a restart loses every key, as after a crash."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            client = redis.Redis(port=self.port, socket_connect_timeout=1)
            client.ping()
            client.close()
        except redis.RedisError:
            return False
        return True

    def start(self) -> None:
        log = self.directory / "redis.log"
        with log.open("a") as handle:
            self.process = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for(self.answers, f"redis-server on port {self.port}", log)

    def stop(self) -> None:
        stop_process(self.process)


def _postgres_bin(name: str) -> str:
    """The server's own tools (initdb, pg_ctl), from Debian's versioned directory if any."""
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: install the PostgreSQL server package.")
    return found


class ThrowawayPostgres:
    """A PostgreSQL cluster made with ``initdb`` in a temporary directory, trust auth on
    loopback only. PostgreSQL refuses to run as root: as root, it runs as ``postgres``."""

    def __init__(self):
        # Under /tmp directly: the postgres user must be able to reach the directory.
        self.directory = Path(tempfile.mkdtemp(prefix="fault-pg-", dir="/tmp"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def create(self) -> None:
        self._run(
            _postgres_bin("initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            _postgres_bin("pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"),
        )
        _wait_for(self.answers, f"PostgreSQL on port {self.port}", self.log)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
