"""Real `manage.py serve` processes for system tests, each with a state directory of its own."""

import contextlib
import http.client
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chat.bench.loopback import free_port as free_port
from tests.support.services import environ_without_profile

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


def stop_process(process: subprocess.Popen | None, *, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if ``process`` is still there after ``timeout`` seconds."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def manage(*args: str, env: dict[str, str], timeout: float = 180, stdin: str = "") -> str:
    """Run a management command to completion; raise with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


# The model `make test` prepares once under the repository's var/, shared by every test site.
PREPARED_MODEL = REPO / "var" / "models" / "SmolLM2-135M-Instruct"


def site_environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = environ_without_profile()
    env.update({"VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", "LLM_MODEL": str(PREPARED_MODEL)})
    env.update(overrides)
    return env


def prepare_state(env: dict[str, str]) -> None:
    """What `make run` does before serving: keys, certificate, database, static files."""
    subprocess.run(
        [sys.executable, "-m", "core.keys"], cwd=REPO, env=env, check=True, capture_output=True
    )
    manage("gencert", "--if-missing", env=env)
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)


@dataclass
class ServedSite:
    process: subprocess.Popen
    port: int
    var_dir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def ca_cert(self) -> Path:
        return self.var_dir / "tls" / "ca.crt"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def request(
        self, path: str, *, method: str = "GET", headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection(
            "localhost", self.port, context=self.tls_context(), timeout=30
        )
        try:
            conn.request(method, path, headers={"Host": "localhost", **(headers or {})})
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()

    def stop(self) -> None:
        stop_process(self.process, timeout=15)

    def json(self, path: str) -> tuple[int, dict]:
        status, _, body = self.request(path)
        return status, json.loads(body)

    def restart(self) -> None:
        """Stop the web process and start a new one on the same port, state and settings."""
        self.stop()
        with self.log_path.open("a") as log:
            log.write("--- restarted\n")
            self.process = _serve(self.port, self.env, log)


def _serve(port: int, env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_until_serving(site: ServedSite) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if site.process.poll() is not None:
            raise AssertionError(f"serve exited {site.process.returncode}:\n{site.log()}")
        if "Serving " in site.log():
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", site.port), timeout=1).close()
                return
        time.sleep(0.1)
    raise AssertionError(f"serve did not start within {START_TIMEOUT_SECONDS} s:\n{site.log()}")


@contextlib.contextmanager
def served_site(var_dir: Path, port: int, **env_overrides: str) -> Iterator[ServedSite]:
    """Prepare a fresh state directory and run `manage.py serve` on ``port`` until exit."""
    # The served port is the public one: the CSRF and websocket Origin checks compare it.
    env = site_environment(var_dir, **{"PUBLIC_PORT": str(port), **env_overrides})
    prepare_state(env)
    log_path = var_dir / "serve.log"
    with log_path.open("w") as log:
        process = _serve(port, env, log)
    site = ServedSite(process=process, port=port, var_dir=var_dir, log_path=log_path, env=env)
    try:
        _wait_until_serving(site)
        yield site
    finally:
        site.stop()
