"""End to end as a user sees it: real `manage.py serve` (and, in the production profile,
`manage.py inference_worker` with Redis and PostgreSQL) on a fresh state directory, N users
signed in over HTTPS with password and authenticator code, one websocket each.

Everything listens on loopback only; every wait has a bound; every process started here is
stopped (its whole process group) when the phase ends, also on errors and Ctrl-C.
"""

import asyncio
import contextlib
import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from chat.bench.local import prompt_for
from chat.bench.loopback import SignedInClient, environ_without_profile, free_port

# bench_chat and loadtest ask this module whether PostgreSQL and Redis answer.
from chat.bench.loopback import services_answer as services_answer
from chat.bench.metrics import Stream, peak_rss_mb, summarise

REPO = Path(settings.BASE_DIR)
START_TIMEOUT = 180
FRAME_TIMEOUT = 120
LEVEL_TIMEOUT = 900
# Throwaway accounts on a throwaway site; the password only has to pass the validators.
PASSWORD = "bench " + secrets.token_hex(8)

CREATE_USERS = """
import sys
from accounts import services
password = sys.stdin.readline().rstrip("\\n")
for name in sys.stdin.read().split():
    services.create_user(username=name, password=password)
"""


class BenchError(Exception):
    pass


def _run(args: list[str], env: dict, *, stdin: str = "", timeout: float = 300) -> str:
    # The project's own interpreter and manage.py, with fixed arguments.
    result = subprocess.run(  # noqa: S603
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


@contextlib.contextmanager
def throwaway_database(server_url: str, prefix: str = "bench") -> Iterator[str]:
    """CREATE DATABASE <prefix>_<hex> on the server, dropped (WITH FORCE) afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Site:
    """A served site on its own VAR_DIR; ``worker_pid`` is the process running the model."""

    def __init__(self, var_dir: Path, model_dir: Path, extra_env: dict[str, str]):
        self.var_dir = var_dir
        self.port = free_port()
        self.env = environ_without_profile()
        self.env.update(
            {
                "VAR_DIR": str(var_dir),
                "LLM_MODEL": str(model_dir),
                "PYTHONUNBUFFERED": "1",
                "DJANGO_SETTINGS_MODULE": "project.settings",
                # The served port is the public one: the Origin checks compare it.
                "PUBLIC_PORT": str(self.port),
                **extra_env,
            }
        )
        self.processes: list[subprocess.Popen] = []
        self.worker_pid: int | None = None

    # --- Lifecycle ----------------------------------------------------------------------

    def prepare(self, users: list[str]) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        _run(["-m", "core.keys", "--var-dir", str(self.var_dir)], self.env)
        _run(["manage.py", "gencert", "--if-missing"], self.env)
        _run(["manage.py", "migrate", "--noinput"], self.env)
        _run(["manage.py", "collectstatic", "--noinput", "--verbosity", "0"], self.env)
        _run(
            ["manage.py", "shell", "--no-imports", "-c", CREATE_USERS],
            self.env,
            stdin=PASSWORD + "\n" + "\n".join(users) + "\n",
        )

    def start(self, *, separate_worker: bool, worker_args: tuple[str, ...] = ()) -> None:
        serve = self._spawn(["manage.py", "serve", "--port", str(self.port), "--no-access-log"])
        self.worker_pid = serve.pid
        if separate_worker:
            self.worker_pid = self._spawn(
                ["manage.py", "inference_worker", *worker_args], "worker"
            ).pid
        self._wait_until_ready()

    def _spawn(self, args: list[str], name: str = "serve") -> subprocess.Popen:
        with (self.var_dir / f"{name}.log").open("w") as log:
            # The project's own interpreter and commands; a process group of their own, so
            # that stopping them stops anything they started.
            process = subprocess.Popen(  # noqa: S603
                [sys.executable, *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.var_dir.glob("*.log"))
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise BenchError(f"{process.args[1]} exited early:\n{self.logs()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self._status("/healthz") == 200:
                    return
            time.sleep(0.5)
        raise BenchError(f"no ready worker within {START_TIMEOUT} s:\n{self.logs()}")

    # --- HTTPS ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.var_dir / "tls" / "ca.crt"))

    def _status(self, path: str) -> int:
        conn = http.client.HTTPSConnection(
            "localhost", self.port, context=self.tls_context(), timeout=10
        )
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def get(self, path: str, cookie: str) -> str:
        """GET ``path`` as the user whose Cookie header is ``cookie``; the body on 200."""
        conn = http.client.HTTPSConnection(
            "localhost", self.port, context=self.tls_context(), timeout=30
        )
        try:
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        if response.status != 200:
            raise BenchError(f"GET {path} answered {response.status}: {body[:300]}")
        return body

    def sign_in(self, username: str) -> str:
        """Password, then the first-time enrolment with a TOTP code from the shown key;
        returns the session's Cookie header."""
        return SignedInClient(self).sign_in(username, PASSWORD).cookie_header()

    # --- Websockets -----------------------------------------------------------------------

    async def ask_together(self, cookies: list[str], tokens: int) -> list[Stream]:
        """Each cookie's user asks its fixed question at the same moment, on its own socket."""
        import websockets

        async with contextlib.AsyncExitStack() as stack:
            sockets = await asyncio.gather(
                *(
                    stack.enter_async_context(
                        websockets.connect(
                            f"wss://localhost:{self.port}/ws/chat/",
                            ssl=self.tls_context(),
                            origin=self.base_url,
                            additional_headers={"Cookie": cookie},
                            open_timeout=30,
                            max_size=2**22,
                        )
                    )
                    for cookie in cookies
                )
            )
            return await asyncio.wait_for(
                asyncio.gather(
                    *(_ask(ws, prompt_for(i), tokens, i) for i, ws in enumerate(sockets))
                ),
                LEVEL_TIMEOUT,
            )


async def _ask(socket, content: str, tokens: int, index: int) -> Stream:
    frame = {
        "type": "chat.send",
        "conversation": None,
        "content": content,
        "client_id": f"bench-{index}",
        "params": {"max_new_tokens": tokens, "temperature": 0},
    }
    stream = Stream(start=time.perf_counter())
    await socket.send(json.dumps(frame))
    characters = 0
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        now = time.perf_counter()
        kind = message.get("type")
        if kind == "chat.delta" and message.get("text"):
            characters += len(message["text"])
            stream.add(now, characters)
        elif kind == "chat.done":
            stream.end = now
            stream.tokens = int((message.get("usage") or {}).get("completion_tokens") or 0)
            if message.get("finish_reason") not in ("stop", "length"):
                stream.error = f"finish_reason {message.get('finish_reason')}"
            return stream
        elif kind == "error":
            stream.end = now
            stream.error = f"error {message.get('code')}"
            return stream


@contextlib.contextmanager
def open_site(
    profile: str,
    *,
    run_dir: Path,
    model_dir: Path,
    users: int,
    postgres_url: str = "",
    redis_url: str = "",
    say=print,
    worker_args: tuple[str, ...] = (),
) -> Iterator[tuple["Site", list[str]]]:
    """A started site of ``profile`` with ``users`` people signed in and one short answer
    asked for (the warm-up); yields it with their session cookies, stops it afterwards."""
    with contextlib.ExitStack() as stack:
        extra = {}
        if profile in ("production", "upstream"):
            database_url = stack.enter_context(throwaway_database(postgres_url))
            extra = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        site = Site(run_dir / profile, model_dir, extra)
        names = [f"bench{index:02d}" for index in range(users)]
        say(f"  {profile}: preparing {site.var_dir} ({len(names)} users)")
        site.prepare(names)
        stack.callback(site.stop)
        say(f"  {profile}: starting on https://localhost:{site.port}/")
        site.start(separate_worker=profile != "embedded", worker_args=worker_args)
        cookies = [site.sign_in(name) for name in names]
        say(f"  {profile}: {len(cookies)} users signed in; warming up")
        asyncio.run(site.ask_together(cookies[:1], 4))
        yield site, cookies


def run_profile(
    profile: str,
    *,
    run_dir: Path,
    model_dir: Path,
    levels: list[int],
    tokens: int,
    postgres_url: str = "",
    redis_url: str = "",
    say=print,
    results: dict | None = None,
    worker_args: tuple[str, ...] = (),
) -> dict:
    """One profile's end-to-end results: a summary per concurrency level, filled into
    ``results`` level by level (so an interrupted run keeps the levels it finished)."""
    with open_site(
        profile,
        run_dir=run_dir,
        model_dir=model_dir,
        users=max(levels),
        postgres_url=postgres_url,
        redis_url=redis_url,
        say=say,
        worker_args=worker_args,
    ) as (site, cookies):
        results = {} if results is None else results
        results.setdefault("levels", {})
        for count in levels:
            streams = asyncio.run(site.ask_together(cookies[:count], tokens))
            summary = summarise(streams)
            summary["peak_rss_mb"] = peak_rss_mb(site.worker_pid)
            results["levels"][str(count)] = summary
            say(
                f"  {profile}: {count} users, {summary['aggregate_tps']} tok/s aggregate, "
                f"{summary['completed']}/{count} completed"
            )
        return results
