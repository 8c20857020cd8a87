"""The upstream worker: serves its model's requests from an OpenAI-compatible engine (vLLM,
Text Generation Inference, llama.cpp's server, Ollama) instead of a model in its own memory.

It is an ``InferenceWorker`` in every other respect: it reads the same requests from its
model's channel, sends the same ``inference.*`` messages, stores each answer before
``inference.done``, and is watched by the consumers the same way. Each request becomes one
streamed ``POST /v1/chat/completions`` (``stream: true``); many stream at once and the engine
batches them. Stop cancels the request's task, which closes its connection (the engines abort
a generation whose client went away). An upstream error, refusal, timeout or broken stream
ends the answer as ``error`` with the text so far stored, as when a local worker dies.

The engine's address must be on an internal network (``INTERNAL_NETWORKS``, the policy that
admits clients): every address its host name resolves to is checked at start, so chat content
never leaves the internal network. Prompts are cut to the engine's context
(``--upstream-context``, or the limit its ``/v1/models`` reports) by an estimate of tokens
from characters, since the engine's tokenizer is not here.
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chat.inference import messages, metrics
from chat.inference.params import SamplingParams
from chat.inference.worker import DELTA_INTERVAL, Generation, InferenceWorker
from core.network import NetworkPolicy

logger = logging.getLogger(__name__)

# Tokens are estimated from characters: BPE tokenizers average about 4 characters a token
# for English prose; 3 leaves room for code, numbers and other languages, so an estimated
# prompt does not overflow the engine's context.
CHARS_PER_TOKEN = 3
# Tokens a chat template adds around each message (role markers, separators), estimated.
TOKENS_PER_MESSAGE = 8
# Where /v1/models entries give the context length: vLLM, then others' spellings.
CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")
# Connecting and each read wait at most this long; the whole answer may take longer. A
# reading timeout as long as the chat's stall timeout: a silent engine ends the answer at
# about the moment the page would give up on it anyway.
CONNECT_TIMEOUT_SECONDS = 10.0
# What an error response of the engine is quoted with in the log, at most.
ERROR_BODY_MAX = 300
# After [DONE], the engine ends the response at once; reading up to that end keeps the
# connection for the next answer (one cut short is closed, and the next one connects anew).
# An engine that keeps the stream open longer loses its connection, not the answer.
DRAIN_SECONDS = 1.0
# The engines' finish reasons that mean the answer was cut at its length limit.
LENGTH_REASONS = frozenset({"length", "max_tokens"})


class UpstreamError(Exception):
    """The engine refused the request, or its stream broke; the message says how."""


def api_base(url: str) -> str:
    """The engine's OpenAI-compatible base URL (ending in /v1) from what an operator gives:
    ``http://host:8000`` or ``http://host:8000/v1``."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"--upstream {url!r} is not an http:// or https:// URL of an OpenAI-compatible "
            "server, such as http://10.0.0.5:8000/v1."
        )
    base = url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def check_internal(url: str, policy: NetworkPolicy | None = None) -> None:
    """Refuse an engine outside INTERNAL_NETWORKS: every address of its host must be in."""
    policy = policy or NetworkPolicy.from_settings()
    host = urlsplit(url).hostname or ""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as error:
            raise ImproperlyConfigured(
                f"The upstream host {host!r} cannot be resolved ({error}); check --upstream."
            ) from None
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    outside = sorted(str(address) for address in addresses if not policy.allows(address))
    if outside:
        raise ImproperlyConfigured(
            f"The upstream {host} is at {', '.join(outside)}, outside INTERNAL_NETWORKS; chat "
            "content may only go to engines on an internal network. Use an internal address, "
            "or add its network to INTERNAL_NETWORKS."
        )


def estimated_tokens(messages: list[dict]) -> int:
    return sum(
        TOKENS_PER_MESSAGE + -(-len(message["content"]) // CHARS_PER_TOKEN) for message in messages
    )


class UpstreamEngine:
    """An OpenAI-compatible engine serving ``model`` at ``url``: what the worker needs of an
    engine (``model_name``, ``max_new_tokens``, ``device``), prompts cut to its context, and
    one streamed completion at a time per call of ``stream()``."""

    @classmethod
    def from_settings(cls, url: str, model: str, *, context: int = 0) -> "UpstreamEngine":
        return cls(
            url,
            model,
            api_key=upstream_api_key(),
            ca_file=settings.UPSTREAM_CA_FILE,
            context=context,
            system_prompt=settings.LLM_SYSTEM_PROMPT,
            max_new_tokens=settings.LLM_MAX_NEW_TOKENS,
            read_timeout=float(settings.CHAT_STALL_TIMEOUT),
        )

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str = "",
        ca_file: Path | None = None,
        context: int = 0,
        system_prompt: str = "",
        max_new_tokens: int = 512,
        read_timeout: float = 60.0,
        policy: NetworkPolicy | None = None,
    ):
        self.base = api_base(url)
        check_internal(self.base, policy)
        if not model:
            raise ImproperlyConfigured(
                "Name the model the upstream serves with --upstream-model (as its /v1/models "
                "lists it); the page's model picker shows that name."
            )
        self.model_name = model
        self.device = f"upstream {self.base}"
        self.system_prompt = system_prompt
        self.wanted_new_tokens = max_new_tokens
        self.max_new_tokens = max_new_tokens
        self.context_length = context
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.verify: ssl.SSLContext | bool = True
        if self.base.startswith("https://"):
            # Verified always; against the site's own CA when it has one.
            self.verify = ssl.create_default_context(
                cafile=str(ca_file) if ca_file is not None else None
            )
        self.timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_SECONDS)

    # --- set-up (in the worker's loading thread) --------------------------------------------

    def load(self) -> "UpstreamEngine":
        """Ask the engine which models it serves; check ours is one and learn its context.
        Raises (and the worker tries again later) while the engine is not reachable."""
        try:
            with httpx.Client(verify=self.verify, timeout=self.timeout) as client:
                response = client.get(f"{self.base}/models", headers=self.headers)
        except httpx.HTTPError as error:
            raise UpstreamError(f"{self.base} is not answering: {error}") from None
        if response.status_code != 200:
            raise UpstreamError(
                f"{self.base}/models answered HTTP {response.status_code}: "
                f"{response.text[:ERROR_BODY_MAX]}"
            )
        try:
            listed = response.json().get("data") or []
        except (ValueError, AttributeError):
            raise UpstreamError(f"{self.base}/models did not answer a list of models.") from None
        entry = next(
            (e for e in listed if isinstance(e, dict) and e.get("id") == self.model_name), None
        )
        if listed and entry is None:
            names = ", ".join(str(e.get("id")) for e in listed if isinstance(e, dict))
            raise ImproperlyConfigured(
                f"{self.base} serves {names}, not {self.model_name}; set --upstream-model to "
                "one of them."
            )
        reported = next(
            (
                value
                for name in CONTEXT_FIELDS
                if isinstance(value := (entry or {}).get(name), int) and value > 0
            ),
            0,
        )
        if self.context_length and reported and self.context_length > reported:
            logger.warning(
                "--upstream-context %d exceeds the %d tokens %s reports; using %d.",
                self.context_length,
                reported,
                self.model_name,
                reported,
            )
        self.context_length = min(c for c in (self.context_length, reported, 10**9) if c)
        if self.context_length == 10**9:
            self.context_length = 0
        if not self.context_length:
            raise ImproperlyConfigured(
                f"{self.base} does not report the context length of {self.model_name}; give it "
                "with --upstream-context (in tokens, as the engine was started with)."
            )
        system = estimated_tokens(self._with_system([]))
        fits = self.context_length - system - self.context_length // 4
        if fits < 1:
            raise ImproperlyConfigured(
                f"The system prompt leaves no room for a question and an answer in the "
                f"{self.context_length} tokens of {self.model_name}; shorten LLM_SYSTEM_PROMPT."
            )
        self.max_new_tokens = min(self.wanted_new_tokens, fits)
        logger.info(
            "Upstream %s serves %s, context %d tokens, answers up to %d tokens",
            self.base,
            self.model_name,
            self.context_length,
            self.max_new_tokens,
        )
        return self

    # --- prompts ----------------------------------------------------------------------------

    def _with_system(self, messages: list[dict]) -> list[dict]:
        if not self.system_prompt:
            return list(messages)
        return [{"role": "system", "content": self.system_prompt}, *messages]

    def prompt_messages(self, history: list[dict], max_new_tokens: int) -> list[dict]:
        """The system prompt and as many of the newest turns of ``history`` as the context
        holds with room for ``max_new_tokens``; whole turns go first, then the beginning of
        the newest message."""
        if not history or history[-1].get("role") != "user":
            raise ValueError("The newest message must be the user's.")
        for message in history:
            if message.get("role") not in {"user", "assistant"} or not isinstance(
                message.get("content"), str
            ):
                raise ValueError("Each message needs a role of 'user' or 'assistant' and text.")
        budget = self.context_length - max_new_tokens
        starts = [i for i, message in enumerate(history) if message["role"] == "user"]
        for start in starts:
            kept = self._with_system(history[start:])
            if estimated_tokens(kept) <= budget:
                return kept
        newest = history[-1]
        room = budget - estimated_tokens(self._with_system([{**newest, "content": ""}]))
        if room <= 0:
            raise ValueError(
                f"The system prompt alone does not fit in the {self.context_length} tokens of "
                f"{self.model_name} with room for the answer; shorten LLM_SYSTEM_PROMPT."
            )
        content = newest["content"][-room * CHARS_PER_TOKEN :]
        return self._with_system([{**newest, "content": content}])

    # --- one answer -------------------------------------------------------------------------

    async def stream(self, client: httpx.AsyncClient, prompt: list[dict], params, on_text):
        """Stream one answer, calling ``on_text(text)`` for each piece; returns its finish
        reason (stop or length) and the engine's usage (empty where it gives none). Raises
        UpstreamError when the engine refuses or the stream breaks."""
        body = {
            "model": self.model_name,
            "messages": prompt,
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Token counts in a last chunk (vLLM, TGI, Ollama); others give none.
            "stream_options": {"include_usage": True},
        }
        if params.ignore_eos:
            body["ignore_eos"] = True  # benchmarks; vLLM and llama.cpp's server know it
        finish = None
        usage: dict = {}
        try:
            async with client.stream(
                "POST", f"{self.base}/chat/completions", json=body, headers=self.headers
            ) as response:
                if response.status_code != 200:
                    text = (await response.aread()).decode("utf-8", "replace")
                    raise UpstreamError(
                        f"HTTP {response.status_code} from {self.base}: {text[:ERROR_BODY_MAX]}"
                    )
                lines = response.aiter_lines()
                async for line in lines:
                    if not line.startswith("data:"):
                        continue  # comments (": ping"), event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        await _read_to_end(lines)
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise UpstreamError(f"{self.base} sent a line that is not JSON.") from None
                    if chunk.get("error"):
                        raise UpstreamError(f"{self.base} reported: {str(chunk['error'])[:300]}")
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            on_text(text)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.TimeoutException:
            raise UpstreamError(f"{self.base} sent nothing for too long.") from None
        except httpx.HTTPError as error:
            raise UpstreamError(f"The stream from {self.base} broke: {error}") from None
        if finish is None:
            raise UpstreamError(f"The stream from {self.base} ended before the answer did.")
        return ("length" if finish in LENGTH_REASONS else "stop"), usage


async def _read_to_end(lines) -> None:
    """Read what is left of a response after [DONE] (normally nothing), for at most
    DRAIN_SECONDS, so that its connection can serve the next answer."""

    async def drain():
        async for _ in lines:
            pass

    # Past that, the connection is closed instead of reused; the answer is complete.
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        await asyncio.wait_for(drain(), DRAIN_SECONDS)


def upstream_api_key() -> str:
    """UPSTREAM_API_KEY, or the contents of UPSTREAM_API_KEY_FILE; empty for none."""
    if settings.UPSTREAM_API_KEY:
        return settings.UPSTREAM_API_KEY
    path = settings.UPSTREAM_API_KEY_FILE
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ImproperlyConfigured(
            f"UPSTREAM_API_KEY_FILE={path} cannot be read ({error.strerror})."
        ) from None


class UpstreamStreams:
    """The answers an upstream worker streams at once: one task each. Stands where a local
    worker has its scheduler (``active``, ``queued`` and ``cancel`` for the worker and its
    metrics)."""

    def __init__(self, engine=None):
        self.tasks: dict[str, asyncio.Task] = {}

    def active(self) -> int:
        return len(self.tasks)

    def queued(self) -> int:
        return 0  # the engine keeps its own queue

    def has_work(self) -> bool:
        return bool(self.tasks)

    def cancel(self, request_id: str) -> None:
        task = self.tasks.get(request_id)
        if task is not None:
            task.cancel()


class UpstreamWorker(InferenceWorker):
    """An inference worker whose answers come from an upstream engine (see the module)."""

    def __init__(self, engine: UpstreamEngine, *, name: str | None = None, **options):
        super().__init__(
            name=name,
            model_name=engine.model_name,
            engine_factory=engine.load,
            scheduler_factory=UpstreamStreams,
            **options,
        )
        self.upstream = engine
        self.client: httpx.AsyncClient | None = None
        self._stopping = False
        self._flush_later: set[str] = set()
        # One per answer streaming: its deltas and its done go out one at a time, in order.
        self._sending: dict[str, asyncio.Lock] = {}

    @property
    def capacity(self) -> int:
        # The engine batches and queues; the worker lets as many stream as a local worker
        # holds in its batch and queue together.
        return settings.LLM_MAX_BATCH + settings.LLM_QUEUE_SIZE

    async def run(self) -> None:
        engine = self.upstream
        limits = httpx.Limits(max_connections=self.capacity, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            verify=engine.verify, timeout=engine.timeout, limits=limits
        ) as client:
            self.client = client
            await super().run()

    def _has_room(self) -> bool:
        return self.scheduler.active() < self.capacity

    async def _decode(self) -> None:
        # Nothing to step: each answer streams in a task of its own (_stream).
        await asyncio.Event().wait()

    async def _accept(self, message: dict) -> None:
        request_id = message["request_id"]
        reply_to = message["reply_to"]
        try:
            params = SamplingParams.from_request(message.get("params") or {})
        except ValueError as exc:
            await self._reject(request_id, reply_to, messages.BAD_REQUEST, str(exc))
            return
        params = params.capped(self.max_new_tokens)
        try:
            prompt = self.engine.prompt_messages(message["messages"], params.max_new_tokens)
        except (ValueError, KeyError) as exc:
            await self._reject(
                request_id, reply_to, messages.FAILED, f"{type(exc).__name__}: {exc}"
            )
            return
        generation = self._note_generation(request_id, reply_to, message["message_id"])
        # The request goes to the engine first; the answer is noted and announced while the
        # engine reads the prompt. Its text and its end wait on the lock, so they reach the
        # asker after inference.started.
        sending = self._sending[request_id] = asyncio.Lock()
        await sending.acquire()
        try:
            task = asyncio.create_task(
                self._stream(generation, prompt, params), name=f"upstream {request_id}"
            )
            self.scheduler.tasks[request_id] = task
            # Lets the task start (and send the request) before anything else runs: from its
            # first await on, a Stop cancels it inside _stream, which ends the answer.
            await asyncio.sleep(0)
            await self._announce(generation)
        finally:
            sending.release()

    async def _stream(self, generation: Generation, prompt: list[dict], params) -> None:
        usage: dict = {}
        pieces = 0

        def on_text(text: str) -> None:
            nonlocal pieces
            pieces += 1
            self._text(generation, text, pieces)

        try:
            finish, usage = await self.engine.stream(self.client, prompt, params, on_text)
        except asyncio.CancelledError:
            finish = "error" if self._stopping else "cancelled"
        except UpstreamError as error:
            logger.warning("Answer %s from the upstream failed: %s", generation.message_id, error)
            finish = "error"
        except Exception:
            logger.exception("Answer %s from the upstream failed", generation.message_id)
            finish = "error"
        self.scheduler.tasks.pop(generation.request_id, None)
        self.generations.pop(generation.request_id, None)
        self._flush_later.discard(generation.request_id)
        # Engines that send no usage stream about one token a piece.
        counted = {
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens", pieces),
        }
        generation.observed.step(_Progress(counted["completion_tokens"] or 0), time.monotonic())
        async with self._sending.pop(generation.request_id):
            await self._finish(generation, finish, counted)
        if not self._room.is_set() and self._has_room():
            self._room.set()

    def _text(self, generation: Generation, text: str, pieces: int) -> None:
        now = time.monotonic()
        if generation.first_token_at is None:
            generation.first_token_at = now
            metrics.TIME_TO_FIRST_TOKEN.observe(now - generation.started)
        generation.observed.step(_Progress(pieces), now)
        generation.parts.append(text)
        generation.pending += text
        # At most one inference.delta per DELTA_INTERVAL, as a local worker sends them; the
        # text that waits goes out when the interval has passed even if no piece follows.
        waited = now - generation.last_sent
        if generation.last_sent == 0.0 or waited >= DELTA_INTERVAL:
            self._spawn(self._send_pending(generation))
        elif generation.request_id not in self._flush_later:
            self._flush_later.add(generation.request_id)
            asyncio.get_running_loop().call_later(
                DELTA_INTERVAL - waited, lambda: self._spawn(self._send_pending(generation))
            )

    async def _send_pending(self, generation: Generation) -> None:
        self._flush_later.discard(generation.request_id)
        lock = self._sending.get(generation.request_id)
        if lock is None:
            return  # the answer ended: _finish sent what was left
        async with lock:
            if not generation.pending or generation.request_id not in self.generations:
                return
            text, generation.pending = generation.pending, ""
            generation.last_sent = time.monotonic()
            await self._send(
                generation.reply_to, messages.delta(request_id=generation.request_id, text=text)
            )

    async def _stop(self) -> None:
        self._stopping = True
        tasks = list(self.scheduler.tasks.values()) if self.scheduler else []
        for task in tasks:
            task.cancel()
        # Each ends as "error" with its text stored, as answers of a stopping local worker.
        await asyncio.gather(*tasks, return_exceptions=True)
        await super()._stop()


class _Progress:
    """What ``GenerationMetrics.step`` reads of a scheduler event: tokens so far."""

    def __init__(self, completion_tokens: int):
        self.completion_tokens = completion_tokens
