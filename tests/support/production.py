"""Pieces of the production profile for system tests: separate inference worker processes
started until they are ready, waiting for the site's health, and asking a question over a
real TLS websocket."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import websockets

from tests.support.server import REPO

# Loading the model on a busy 2-core machine takes a while; a worker that never gets there
# fails the test with its log, never hangs it.
WORKER_START_TIMEOUT_SECONDS = 180
LOG_TAIL_CHARACTERS = 4000


class Worker:
    """A `manage.py inference_worker --name NAME [ARGS]` process in a process group of its
    own."""

    def __init__(self, env, log_path, name, args=()):
        self.name = name
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "inference_worker", "--name", name, *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log()[-LOG_TAIL_CHARACTERS:]

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _health(site) -> tuple[int | None, dict | str]:
    try:
        return site.json("/healthz")
    except OSError as error:
        return None, str(error)


def _lists_ready(body, name: str) -> bool:
    """Whether /healthz's body shows the worker ``name`` ready; a body without details (a
    client outside METRICS_NETWORKS) counts as showing it once the status is 200."""
    if not isinstance(body, dict) or "checks" not in body:
        return True
    workers = body["checks"].get("inference", {}).get("workers", [])
    return any(w["name"] == name and w["state"] == "ready" for w in workers)


def start_worker(site, name, *, args=(), timeout=WORKER_START_TIMEOUT_SECONDS) -> Worker:
    """Start an inference worker named ``name`` with ``site.env`` and the command's ``args``
    (its log in ``site.var_dir``) and return it once /healthz answers 200 with it ready.

    Raises AssertionError, with the end of the worker's log, when the worker exits first or
    is not ready within ``timeout`` seconds; the worker is stopped then."""
    worker = Worker(site.env, site.var_dir / f"{name}.log", name, args)
    deadline = time.monotonic() + timeout
    status, body = None, ""
    try:
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"The inference worker {name} exited {worker.process.returncode} before "
                    f"/healthz showed it ready. The end of its log:\n{worker.log_tail()}"
                )
            status, body = _health(site)
            if status == 200 and _lists_ready(body, name):
                return worker
            time.sleep(0.5)
        raise AssertionError(
            f"The inference worker {name} was not ready in /healthz within {timeout} s "
            f"(last answer: {status} {body}). The end of its log:\n{worker.log_tail()}"
        )
    except BaseException:
        worker.stop()
        raise


def wait_until_ready(site, timeout=120):
    """/healthz answers 200 (database, channel layer and a ready worker); its body."""
    deadline = time.monotonic() + timeout
    status, body = None, ""
    while time.monotonic() < deadline:
        status, body = _health(site)
        if status == 200:
            return body
        time.sleep(0.5)
    raise AssertionError(f"/healthz did not answer 200 within {timeout} s: {status} {body}")


def connect(site, cookie):
    return websockets.connect(
        f"wss://localhost:{site.port}/ws/chat/",
        ssl=site.tls_context(),
        origin=f"https://localhost:{site.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=20,
    )


async def ask_on(socket, content, *, conversation=None, max_new_tokens=24, until=None, model=None):
    """Send one question on an open socket (to ``model``, when given); return (frames, text)
    once it ends. ``until(frames)`` may act mid-stream."""
    frame = {
        "type": "chat.send",
        "conversation": conversation,
        "content": content,
        "client_id": "sys-1",
        "params": {"max_new_tokens": max_new_tokens},
    }
    if model is not None:
        frame["model"] = model
    await socket.send(json.dumps(frame))
    frames = []
    while not frames or frames[-1]["type"] not in ("chat.done", "error"):
        frames.append(json.loads(await asyncio.wait_for(socket.recv(), 60)))
        if until is not None:
            await until(frames)
    text = "".join(f["text"] for f in frames if f["type"] == "chat.delta")
    return frames, text


async def ask(site, cookie, content, **options):
    """Open a socket, ask one question, close; return (frames, text)."""
    async with connect(site, cookie) as socket:
        return await ask_on(socket, content, **options)
