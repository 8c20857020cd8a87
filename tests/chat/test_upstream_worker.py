"""The upstream worker's order of events, against a scripted OpenAI-compatible engine on a
loopback socket: the request goes to the engine before the asker is told the answer started
(the engine reads the prompt meanwhile), yet the asker still hears inference.started first,
then the text, then inference.done; and a Stop at any moment ends the answer.

The system tests (tests/system/test_upstream.py) do the same through the whole site with
llama.cpp's server; these run in a second."""

import asyncio
import contextlib
import json
import uuid

import pytest
from channels.layers import get_channel_layer

from chat.inference import messages
from chat.inference.upstream import UpstreamEngine, UpstreamWorker

PIECES = ["Paris", " is", " the", " capital", "."]


class ScriptedEngine:
    """A minimal HTTP/1.1 server speaking the two endpoints the worker uses: /v1/models,
    and /v1/chat/completions streaming PIECES as server-sent events. ``received`` is set
    when a completion request has been read whole; the answer starts once ``go`` is set."""

    def __init__(self, *, linger: float = 0.0):
        self.received = asyncio.Event()
        self.go = asyncio.Event()
        self.bodies: list[dict] = []
        self.server = None
        # Connections opened by the worker; seconds to keep a response open after [DONE].
        self.connections = 0
        self.linger = linger

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if request_line.startswith(b"GET /v1/models"):
                    payload = json.dumps({"data": [{"id": "scripted", "max_model_len": 2048}]})
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        + f"content-length: {len(payload)}\r\n\r\n{payload}".encode()
                    )
                    await writer.drain()
                    continue
                self.bodies.append(json.loads(body))
                self.received.set()
                await self.go.wait()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                for piece in PIECES:
                    await self._event(writer, {"choices": [{"delta": {"content": piece}}]})
                    await asyncio.sleep(0.01)
                await self._event(writer, {"choices": [{"delta": {}, "finish_reason": "stop"}]})
                await self._event(
                    writer, {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}
                )
                await self._chunk(writer, b"data: [DONE]\n\n")
                await asyncio.sleep(self.linger)
                await self._chunk(writer, b"")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _event(self, writer, data: dict):
        await self._chunk(writer, f"data: {json.dumps(data)}\n\n".encode())

    @staticmethod
    async def _chunk(writer, data: bytes):
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()


class AnnouncesWhenTheEngineHasTheRequest(UpstreamWorker):
    """Tells the asker the answer started only once the engine has read the request: were
    the request sent after the announcement, this worker would wait for ever."""

    def __init__(self, engine, scripted: ScriptedEngine, **options):
        super().__init__(engine, **options)
        self.scripted = scripted

    async def _announce(self, generation):
        await asyncio.wait_for(self.scripted.received.wait(), 10)
        await super()._announce(generation)
        self.scripted.go.set()


@contextlib.asynccontextmanager
async def running(worker):
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(1000):
            if worker.state == "ready" or task.done():
                break
            await asyncio.sleep(0.01)
        assert worker.state == "ready", f"the upstream worker is {worker.state}: {worker.error}"
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _ask(worker) -> tuple[str, str]:
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    request_id = uuid.uuid4().hex
    await layer.send(
        messages.requests_channel(worker.model_name),
        messages.generate(
            request_id=request_id,
            reply_to=reply_to,
            message_id="",  # an answer nobody stores, as an API call the site does not keep
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            params={},
        ),
    )
    return request_id, reply_to


async def _replies(reply_to: str) -> list[dict]:
    layer = get_channel_layer()
    received = []
    while not received or received[-1]["type"] != messages.DONE:
        received.append(await asyncio.wait_for(layer.receive(reply_to), 10))
    return received


def _engine(url: str) -> UpstreamEngine:
    return UpstreamEngine(url, "scripted", context=2048, read_timeout=10)


@pytest.mark.django_db(transaction=True)
async def test_the_engine_reads_the_prompt_while_the_answer_is_announced():
    async with ScriptedEngine() as scripted:
        worker = AnnouncesWhenTheEngineHasTheRequest(_engine(scripted.url), scripted, name="u")
        async with running(worker):
            _, reply_to = await _ask(worker)
            received = await _replies(reply_to)

    kinds = [m["type"] for m in received]
    assert kinds[0] == messages.STARTED
    assert kinds[-1] == messages.DONE
    assert set(kinds[1:-1]) == {messages.DELTA}
    assert "".join(m["text"] for m in received[1:-1]) == "".join(PIECES)
    assert received[-1]["finish_reason"] == "stop"
    assert received[-1]["usage"]["completion_tokens"] == 5
    assert scripted.bodies[0]["stream"] is True


@pytest.mark.django_db(transaction=True)
async def test_a_stop_while_the_request_is_on_its_way_ends_the_answer():
    async with ScriptedEngine() as scripted:

        class StoppedAtOnce(UpstreamWorker):
            async def _announce(self, generation):
                # The Stop arrives before the asker even heard that the answer started.
                self.scheduler.cancel(generation.request_id)
                await super()._announce(generation)

        worker = StoppedAtOnce(_engine(scripted.url), name="u")
        async with running(worker):
            _, reply_to = await _ask(worker)
            received = await _replies(reply_to)
            assert worker.scheduler.active() == 0
            assert worker.generations == {}

    assert [m["type"] for m in received] == [messages.STARTED, messages.DONE]
    assert received[-1]["finish_reason"] == "cancelled"


@pytest.mark.django_db(transaction=True)
async def test_answers_one_after_another_share_one_connection():
    async with ScriptedEngine() as scripted:
        scripted.go.set()
        worker = UpstreamWorker(_engine(scripted.url), name="u")
        async with running(worker):
            for _ in range(3):
                _, reply_to = await _ask(worker)
                assert (await _replies(reply_to))[-1]["finish_reason"] == "stop"
    # One for the model list at start, one for all three answers: each response is read to
    # its end, so its connection serves the next answer.
    assert scripted.connections == 2


@pytest.mark.django_db(transaction=True)
async def test_an_engine_that_keeps_the_response_open_after_done_still_ends_the_answer(
    monkeypatch,
):
    from chat.inference import upstream

    monkeypatch.setattr(upstream, "DRAIN_SECONDS", 0.2)
    async with ScriptedEngine(linger=30) as scripted:
        scripted.go.set()
        worker = UpstreamWorker(_engine(scripted.url), name="u")
        async with running(worker):
            _, reply_to = await _ask(worker)
            received = await asyncio.wait_for(_replies(reply_to), 5)
    assert received[-1]["finish_reason"] == "stop"
    assert "".join(m["text"] for m in received[1:-1]) == "".join(PIECES)
