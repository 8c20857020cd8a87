"""The chat socket: validates frames, checks ownership and capacity, hands work to an
inference worker and forwards its stream. Thin: chat.services changes data, the worker
generates, chat.protocol validates."""

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError
from redis.exceptions import RedisError

from accounts.roles import may_chat
from accounts.websocket import REFUSAL_HOLDER, VerifiedSessionConsumer
from audit.log import record_probe
from chat import conversation_settings, model_choice, protocol, retrieval, services
from chat.inference import messages, registry
from chat.inference.worker import ensure_embedded_worker
from core import metrics

logger = logging.getLogger(__name__)

# Close code for "signed in, but not allowed to chat" (as for a refused session).
CLOSE_NOT_ALLOWED = 4403
# How often running streams are checked for a silent or dead worker.
WATCH_INTERVAL = 1.0
# A worker missing from the registry for this long is dead (two heartbeats and a margin).
WORKER_MISSING_GRACE = settings.WORKER_HEARTBEAT_SECONDS * 2 + 1.0
# The database (PostgreSQL) or the shared cache and channel layer (Redis) not answering.
OUTAGES = (OperationalError, InterfaceError, RedisError, ConnectionError)
UNAVAILABLE_DETAIL = (
    "The chat's storage is not answering right now, so your message was not sent. Nothing "
    "you wrote before is lost; try again in a minute."
)

# A worker's refusal as the browser sees it; a reason not meant for users is replaced by this.
REJECTED_CODES = {messages.BUSY: protocol.BUSY, messages.BAD_REQUEST: protocol.BAD_FRAME}
REJECTED_DETAIL = (
    "The assistant could not answer this message because of a problem on the server; try "
    "again, and if it keeps happening tell your IT team, who can find the reason in the "
    "server log."
)


def _not_ready(
    workers: list[dict], client_id: str, model: str, *, remembered: bool
) -> protocol.ProtocolError:
    """Why no worker of ``model`` can take a message, from the states of those in the
    registry that serve it."""
    states = {w.get("state") for w in workers}
    if "loading" in states:
        return protocol.ProtocolError(
            protocol.LOADING,
            f"{model} is starting up. Your message was not sent; try again in a minute.",
            client_id,
        )
    if states == {"failed"}:
        return protocol.ProtocolError(
            protocol.NO_WORKER,
            f"{model} could not start, so your message was not sent. Pick another model, or "
            "ask your IT team, who can see why on the server's /healthz page.",
            client_id,
        )
    if remembered:
        return protocol.ProtocolError(
            protocol.NO_WORKER,
            f"{model}, the model of this conversation, is not running right now. Your "
            "message was not sent; pick another model, or try again later.",
            client_id,
        )
    return protocol.ProtocolError(
        protocol.NO_WORKER,
        f"{model} is not running right now. Your message was not sent; pick another model, "
        "try again in a minute, or tell your IT team if it stays like this.",
        client_id,
    )


@dataclass
class Stream:
    """An answer this socket is waiting for."""

    request_id: str
    conversation_id: str
    message_id: str
    client_id: str
    last_news: float
    worker: str | None = None
    worker_channel: str | None = None
    parts: list[str] = field(default_factory=list)
    stop_requested: bool = False
    # When the worker was first found missing from the registry (None: it is listed).
    missing_since: float | None = None
    # The document passages the answer was given (chat.retrieval), for chat.done.
    citations: list[dict] = field(default_factory=list)


class ChatConsumer(VerifiedSessionConsumer):
    async def connect(self):
        self.streams: dict[str, Stream] = {}
        self._watchdog = None
        if not await database_sync_to_async(may_chat)(self.scope["user"]):
            # Refused before accept: recorded as websocket.refused with this reason.
            if REFUSAL_HOLDER in self.scope:
                self.scope[REFUSAL_HOLDER].update(reason="not_an_employee", user=self.scope["user"])
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        ensure_embedded_worker()
        await super().connect()
        self._watchdog = asyncio.create_task(self._watch_streams())
        metrics.WEBSOCKETS_ACTIVE.inc()

    async def disconnect(self, code):
        if self._watchdog is not None:
            metrics.WEBSOCKETS_ACTIVE.dec()
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        # Answers still being written are finished and stored by their worker.
        await super().disconnect(code)

    # --- frames from the browser ----------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        try:
            frame = protocol.parse(text_data)
        except protocol.ProtocolError as error:
            await self.send_json(error.frame())
            return
        except Exception:
            # A frame the parser did not foresee is still the sender's problem, not a
            # server error: logged so the parser can learn it, answered as a bad frame.
            logger.exception("Chat frame could not be parsed")
            await self.send_json(
                protocol.ProtocolError(
                    protocol.BAD_FRAME,
                    "That frame could not be read; send one JSON object as the page does.",
                ).frame()
            )
            return
        try:
            if isinstance(frame, protocol.ChatStop):
                await self._stop(frame)
            else:
                await self._send_message(frame)
        except protocol.ProtocolError as error:
            await self.send_json(error.frame())
        except OUTAGES as error:
            logger.warning("Chat frame refused, a service is down: %s", error)
            client_id = getattr(frame, "client_id", None)
            await self.send_json(
                protocol.ProtocolError(protocol.UNAVAILABLE, UNAVAILABLE_DETAIL, client_id).frame()
            )
        except Exception:
            logger.exception("Chat frame failed")
            await self.send_json(
                protocol.ProtocolError(
                    protocol.INTERNAL, "Something went wrong on the server; try again."
                ).frame()
            )

    def _start_turn(self, frame, model_name: str, citations: list) -> services.Turn:
        """Store what ``frame`` asks for (a question, a new version of the latest answer, an
        edited question) with an empty answer to be written; ``citations`` are the document
        passages retrieved for a question."""
        if isinstance(frame, protocol.ChatRegenerate):
            return services.regenerate(
                actor=self.user,
                conversation_id=frame.conversation,
                model_name=model_name,
                scope=self.scope,
            )
        if isinstance(frame, protocol.ChatEdit):
            return services.edit_and_resend(
                actor=self.user,
                conversation_id=frame.conversation,
                message_id=frame.message,
                content=frame.content,
                model_name=model_name,
                scope=self.scope,
            )
        new_settings = None
        if frame.conversation is None:
            # A new conversation keeps the settings its first message came with.
            new_settings = conversation_settings.ChatSettings(
                frame.instructions,
                frame.params.get("temperature"),
                frame.params.get("max_new_tokens"),
            )
        return services.start_turn(
            actor=self.user,
            conversation_id=frame.conversation,
            content=frame.content,
            model_name=model_name,
            scope=self.scope,
            new_settings=new_settings,
            citations=citations,
        )

    def _begin_turn(self, frame) -> tuple[str, services.Turn, list]:
        """Choose the model, check that a worker of it can take the message and that the
        user may start another answer, retrieve document passages, and store the turn;
        raises ProtocolError for each refusal, before anything is stored."""
        client_id = frame.client_id
        live = registry.live_workers()
        model = self._model_for(frame, live)
        listed = [worker for worker in live if worker.get("model") == model]
        workers = [w for w in listed if w.get("state") == "ready"]
        if not workers:
            raise _not_ready(
                listed,
                client_id,
                model,
                remembered=getattr(frame, "model", None) is None and frame.conversation is not None,
            )
        if not registry.has_room(workers):
            raise protocol.ProtocolError(
                protocol.BUSY,
                f"{model} is answering as many people as it can. Your message was not "
                "sent; try again in a moment, or pick another model.",
                client_id,
            )
        running = self._running_generations()
        if running >= settings.CHAT_MAX_GENERATIONS_PER_USER:
            raise protocol.ProtocolError(
                protocol.TOO_MANY_GENERATIONS,
                f"You already have {running} answers being written; wait for one to finish "
                "or stop it.",
                client_id,
            )
        citations = []
        if isinstance(frame, protocol.ChatSend):
            try:
                citations = retrieval.retrieve(
                    self.user, frame.content, frame.sources, max_chars=settings.RETRIEVAL_MAX_CHARS
                )
            except retrieval.SourcesRefused as refused:
                code = (
                    protocol.SOURCE_UNSEARCHABLE
                    if isinstance(refused, retrieval.SourcesUnsearchable)
                    else protocol.SOURCE_NOT_FOUND
                )
                raise protocol.ProtocolError(code, str(refused), client_id) from None
        try:
            turn = self._start_turn(frame, model, citations)
        except services.MessageNotFound:
            raise protocol.ProtocolError(
                protocol.NOT_FOUND,
                "That message is no longer in the conversation as shown; reload it and try again."
                if isinstance(frame, protocol.ChatEdit)
                else "There is no answer to regenerate at the end of this conversation.",
                client_id,
            ) from None
        except services.ConversationNotFound:
            self._record_not_found(frame.conversation)
            raise protocol.ProtocolError(
                protocol.NOT_FOUND, "That conversation does not exist.", client_id
            ) from None
        except services.GenerationInProgress:
            raise protocol.ProtocolError(
                protocol.GENERATION_IN_PROGRESS,
                "An answer is still being written in this conversation; wait or stop it.",
                client_id,
            ) from None
        return model, turn, citations

    async def _send_message(
        self, frame: protocol.ChatSend | protocol.ChatRegenerate | protocol.ChatEdit
    ) -> None:
        client_id = frame.client_id
        # Everything before the request goes to a worker, in one call on the database
        # thread: each hop there and back adds to the time to the first token.
        model, turn, citations = await database_sync_to_async(self._begin_turn)(frame)
        request_id = uuid.uuid4().hex
        stream = Stream(
            request_id=request_id,
            conversation_id=str(turn.conversation.pk),
            message_id=str(turn.answer.pk),
            client_id=client_id,
            last_news=time.monotonic(),
            citations=citations,
        )
        self.streams[request_id] = stream
        started = protocol.chat_started(
            conversation=stream.conversation_id,
            question=str(turn.question.pk),
            message=stream.message_id,
            model=turn.answer.model_name,
            client_id=client_id,
        )
        try:
            # The request goes first, chat.started to the browser while the worker reads it.
            # Nothing from the worker can overtake chat.started: this consumer handles one
            # message at a time, and this one is not finished until chat.started is sent.
            await self.channel_layer.send(
                messages.requests_channel(model),
                messages.generate(
                    request_id=request_id,
                    reply_to=self.channel_name,
                    message_id=stream.message_id,
                    messages=turn.history,
                    # The conversation's settings, unless this frame set its own.
                    params={**turn.params, **frame.params},
                ),
            )
        except OUTAGES:
            # The question is stored; its answer never started: end it as failed.
            self.streams.pop(request_id, None)
            await database_sync_to_async(services.finish_answer)(
                message_id=stream.message_id, content="", finish_reason="error"
            )
            await self.send_json(started)
            await self.send_json(
                protocol.ProtocolError(protocol.UNAVAILABLE, UNAVAILABLE_DETAIL, client_id).frame()
            )
            await self.send_json(
                protocol.chat_done(message=stream.message_id, finish_reason="error")
            )
            return
        await self.send_json(started)

    def _model_for(self, frame, workers: list[dict]) -> str:
        """The model this message goes to (the picker's, the conversation's, the default);
        a new version or an edited question stays with the conversation's model."""
        try:
            return model_choice.model_of(
                self.user, frame.conversation, getattr(frame, "model", None), workers
            )
        except services.ConversationNotFound:
            self._record_not_found(frame.conversation)
            raise protocol.ProtocolError(
                protocol.NOT_FOUND, "That conversation does not exist.", frame.client_id
            ) from None
        except model_choice.ModelNotAllowed as refused:
            raise protocol.ProtocolError(
                protocol.MODEL_NOT_ALLOWED,
                f"You may not use the model {refused}; pick another one.",
                frame.client_id,
            ) from None

    def _running_generations(self) -> int:
        return services.answers_running(actor=self.user, scope=self.scope)

    async def _stop(self, frame: protocol.ChatStop) -> None:
        conversation = str(frame.conversation)
        for stream in self.streams.values():
            if stream.conversation_id == conversation:
                stream.stop_requested = True
                if stream.worker_channel:
                    await self._cancel(stream.worker_channel, stream.request_id)
                return
        # Started from another tab or before a reload: the worker is noted in the cache.
        target = await database_sync_to_async(self._streaming_answer)(frame.conversation)
        noted = await sync_to_async(cache.get)(registry.request_key(target)) if target else None
        if noted is None:
            raise protocol.ProtocolError(
                protocol.NOTHING_TO_STOP, "No answer is being written in that conversation."
            )
        await self._cancel(noted["worker"], noted["request_id"])

    def _streaming_answer(self, conversation_id):
        try:
            conversation = services.conversation_of(self.user, conversation_id)
        except services.ConversationNotFound:
            self._record_not_found(conversation_id)
            raise protocol.ProtocolError(
                protocol.NOT_FOUND, "That conversation does not exist."
            ) from None
        answer = conversation.messages.filter(status="streaming").first()
        return str(answer.pk) if answer else None

    def _record_not_found(self, conversation_id) -> None:
        """Someone tried a conversation id that is not theirs (or no one's): a probe."""
        client = self.scope.get("client")
        record_probe(
            "conversation.not_found",
            source=client[0] if client else "",
            outcome="denied",
            scope=self.scope,
            target=str(conversation_id),
            channel="websocket",
        )

    async def _cancel(self, worker_channel: str, request_id: str) -> None:
        await self.channel_layer.send(worker_channel, messages.cancel(request_id=request_id))

    # --- messages from the worker ---------------------------------------------------------

    async def inference_started(self, event):
        stream = self.streams.get(event["request_id"])
        if stream is None:
            return
        stream.last_news = time.monotonic()
        stream.worker_channel = event["worker"]
        if stream.stop_requested:
            await self._cancel(stream.worker_channel, stream.request_id)

    async def inference_delta(self, event):
        stream = self.streams.get(event["request_id"])
        if stream is None:
            return
        stream.last_news = time.monotonic()
        stream.parts.append(event["text"])
        await self.send_json(protocol.chat_delta(message=stream.message_id, text=event["text"]))

    async def inference_done(self, event):
        stream = self.streams.pop(event["request_id"], None)
        if stream is None:
            return
        await self.send_json(
            protocol.chat_done(
                message=stream.message_id,
                finish_reason=event["finish_reason"],
                usage=event.get("usage"),
                citations=stream.citations,
                time_to_first_token_ms=event.get("time_to_first_token_ms"),
                duration_ms=event.get("duration_ms"),
            )
        )

    async def inference_rejected(self, event):
        stream = self.streams.pop(event["request_id"], None)
        if stream is None:
            return
        await database_sync_to_async(services.finish_answer)(
            message_id=stream.message_id, content="", finish_reason="error"
        )
        code, detail = event.get("code"), event.get("detail") or ""
        logger.warning("The worker refused to answer %s (%s): %s", stream.message_id, code, detail)
        if code not in messages.FOR_USERS or not detail:
            # The reason is for the server's log (above); the person is told where it is.
            detail = REJECTED_DETAIL
        await self.send_json(
            protocol.ProtocolError(
                REJECTED_CODES.get(code, protocol.INTERNAL), detail, stream.client_id
            ).frame()
        )
        await self.send_json(protocol.chat_done(message=stream.message_id, finish_reason="error"))

    # --- streams that go quiet ------------------------------------------------------------

    async def _watch_streams(self):
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            for stream in list(self.streams.values()):
                try:
                    silent = now - stream.last_news > settings.CHAT_STALL_TIMEOUT
                    dead = False
                    if stream.worker_channel and not silent:
                        alive = await sync_to_async(self._worker_alive)(stream.worker_channel)
                        if alive:
                            stream.missing_since = None
                        elif stream.missing_since is None:
                            stream.missing_since = now
                        # A worker must stay missing past a few heartbeats: after a Redis
                        # restart the registry is empty until each worker's next beat.
                        dead = not alive and now - stream.missing_since > WORKER_MISSING_GRACE
                    if silent or dead:
                        await self._give_up(stream)
                except OUTAGES as error:
                    # Cannot tell now (Redis or the database is down); the stall timeout
                    # still ends the stream, and the next round tries again.
                    logger.warning("Could not check the answer %s: %s", stream.message_id, error)

    @staticmethod
    def _worker_alive(worker_channel: str) -> bool:
        return any(w.get("channel") == worker_channel for w in registry.live_workers())

    async def _give_up(self, stream: Stream) -> None:
        """The worker died or went silent: keep what was written, end the stream."""
        self.streams.pop(stream.request_id, None)
        await database_sync_to_async(services.finish_answer)(
            message_id=stream.message_id,
            content="".join(stream.parts),
            finish_reason="error",
        )
        await self.send_json(protocol.chat_done(message=stream.message_id, finish_reason="error"))
