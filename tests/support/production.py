"""Pieces of the production profile for system tests: separate inference worker processes,
waiting for readiness, and asking a question over a real TLS websocket."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import websockets

from tests.support.server import REPO


class Worker:
    """A `manage.py inference_worker` process in a process group of its own."""

    def __init__(self, env, log_path):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "inference_worker"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

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


def wait_until_ready(site, timeout=120):
    """/healthz answers 200 (database, channel layer and a ready worker); its body."""
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        try:
            status, body = site.json("/healthz")
        except OSError as error:
            status, body = None, str(error)
        if status == 200:
            return body
        time.sleep(0.5)
    raise AssertionError(f"not ready within {timeout} s: {body}")


def connect(site, cookie):
    return websockets.connect(
        f"wss://localhost:{site.port}/ws/chat/",
        ssl=site.tls_context(),
        origin=f"https://localhost:{site.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=20,
    )


async def ask_on(socket, content, *, conversation=None, max_new_tokens=24, until=None):
    """Send one question on an open socket; return (frames, text) once it ends.
    ``until(frames)`` may act mid-stream."""
    await socket.send(
        json.dumps(
            {
                "type": "chat.send",
                "conversation": conversation,
                "content": content,
                "client_id": "sys-1",
                "params": {"max_new_tokens": max_new_tokens},
            }
        )
    )
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
