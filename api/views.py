"""The OpenAI-compatible endpoints (docs/api.md). Thin: api.auth authenticates, api.limits
counts, api.chat_request validates, api.generation talks to the workers, api.services
records."""

import asyncio
import base64
import json
import logging
import time
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse

from api import chat_request, limits, model_access, services
from api.auth import token_required
from api.errors import ApiError, bad_request, not_found, server_error, unavailable
from api.generation import Generation, StopSequences, WorkerRefused, WorkerSilent
from chat import services as chat_services
from chat.inference import messages, registry
from chat.inference.worker import ensure_embedded_worker
from core.json_input import JSONInputError, parse_json
from documents import embedding

logger = logging.getLogger(__name__)

# A client may try again this soon when no worker can take its request.
RETRY_WHEN_BUSY_SECONDS = 5


def _only(method: str, request):
    if request.method != method:
        return ApiError(
            405, f"Use {method} for {request.path}.", code="method_not_allowed"
        ).response()
    return None


def _model_object(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "organization"}


@token_required("models")
async def models(request):
    if refused := _only("GET", request):
        return refused
    names = await sync_to_async(model_access.models_for)(request.user)
    names.append(embedding.current().name)
    return JsonResponse({"object": "list", "data": [_model_object(name) for name in names]})


@token_required("models")
async def model(request, name):
    if refused := _only("GET", request):
        return refused
    usable = name == embedding.current().name
    if not usable and not await sync_to_async(model_access.may_use_model)(request.user, name):
        raise not_found(f"There is no model {name!r} you may use.", "model", "model_not_found")
    return JsonResponse(_model_object(name))


def _refusal_of_worker(error: WorkerRefused) -> ApiError:
    if error.code == messages.BUSY:
        return unavailable(error.detail, RETRY_WHEN_BUSY_SECONDS)
    if error.code == messages.BAD_REQUEST:
        return bad_request(error.detail)
    logger.warning("A worker refused an API request (%s): %s", error.code, error.detail)
    return server_error(
        "The model could not answer because of a problem on the server; its log says why."
    )


def _check_workers(model: str) -> None:
    listed = model_access.workers_of(model)
    ready = [w for w in listed if w.get("state") == "ready"]
    if ready and registry.has_room(ready):
        return
    if ready:
        raise unavailable(
            "The model is answering as many requests as it can; try again shortly.",
            RETRY_WHEN_BUSY_SECONDS,
        )
    if any(w.get("state") == "loading" for w in listed) or settings.EMBEDDED_WORKER:
        raise unavailable("The model is starting up; try again in a minute.", 30)
    raise unavailable("No model is running right now; tell your IT team.", 60)


def _admit(request, call: chat_request.ChatRequest):
    """Everything checked before the request reaches a worker, in the order a caller can
    fix it; returns the answer's message id when the site keeps API calls."""
    token = request.api_token
    if not model_access.may_use_model(token.user, call.model):
        raise not_found(
            f"There is no model {call.model!r} you may use; /v1/models lists yours.",
            "model",
            "model_not_found",
        )
    limits.check_daily_tokens(token)
    _check_workers(call.model)
    if not settings.API_STORE_CONVERSATIONS:
        limits.take_generation_slot(token)
        return ""
    limits.take_generation_slot(token, held=False)
    turn = chat_services.start_turn(
        actor=token.user,
        conversation_id=None,
        content=call.messages[-1]["content"],
        model_name=call.model,
        api_caller=chat_services.ApiCaller(token_name=token.name, token_prefix=token.prefix),
    )
    return str(turn.answer.pk)


@token_required("chat")
async def chat_completions(request):
    if refused := _only("POST", request):
        return refused
    try:
        body = parse_json(request.body)
    except JSONInputError as error:
        raise bad_request(str(error)) from None
    call = chat_request.parse(body)
    ensure_embedded_worker()
    message_id = await sync_to_async(_admit)(request, call)
    generation = Generation(
        messages=call.messages,
        params=call.params,
        stops=StopSequences(call.stop),
        message_id=message_id,
        channel=model_access.requests_channel(call.model),
    )
    # A stored answer counts itself as a message being written; an unstored one holds a place.
    release = (
        sync_to_async(limits.release_generation_slot) if not message_id else _nothing_to_release
    )
    try:
        model_name = await generation.start()
    except BaseException as error:
        generation.abandon()
        await asyncio.shield(release(request.user))
        if isinstance(error, WorkerRefused):
            raise _refusal_of_worker(error) from None
        if isinstance(error, WorkerSilent):
            raise unavailable("The model did not answer in time; try again.", 5) from None
        raise
    answer_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if call.stream:
        response = StreamingHttpResponse(
            _events(request, call, generation, answer_id, created, model_name, release),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    try:
        text = "".join([piece async for piece in generation.pieces()])
    except WorkerSilent:
        raise server_error("The model stopped answering; try again.") from None
    finally:
        generation.abandon()
        await asyncio.shield(release(request.user))
    outcome = generation.outcome
    if outcome.finish_reason == "error":
        raise server_error("The model could not finish its answer; try again.")
    await _record(request, generation, stream=False)
    return JsonResponse(
        {
            "id": answer_id,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": _finish_reason(outcome.finish_reason),
                }
            ],
            "usage": _usage(outcome),
            "system_fingerprint": None,
        }
    )


async def _nothing_to_release(user) -> None:
    return None


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _usage(outcome) -> dict:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


async def _record(request, generation: Generation, *, stream: bool) -> None:
    outcome = generation.outcome
    await sync_to_async(services.record_call)(
        token=request.api_token,
        endpoint="chat.completions",
        model_name=outcome.model,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        duration_ms=round((time.monotonic() - generation.started_at) * 1000),
        finish_reason=_finish_reason(outcome.finish_reason),
        stream=stream,
        request=request,
    )


def _sse(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _events(request, call, generation: Generation, answer_id, created, model_name, release):
    """OpenAI's stream: a first chunk with the role, one chunk per piece of text, a chunk
    with the finish reason, the usage chunk when asked, then [DONE]. A caller that goes away
    cancels the worker's work (Django cancels this generator)."""

    def chunk(delta: dict, finish_reason=None) -> dict:
        data = {
            "id": answer_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if call.include_usage:
            data["usage"] = None
        return data

    try:
        yield _sse(chunk({"role": "assistant", "content": ""}))
        try:
            async for piece in generation.pieces():
                yield _sse(chunk({"content": piece}))
        except WorkerSilent:
            yield _sse(server_error("The model stopped answering; try again.").body())
            return
        outcome = generation.outcome
        if outcome.finish_reason == "error":
            yield _sse(server_error("The model could not finish its answer; try again.").body())
            return
        yield _sse(chunk({}, _finish_reason(outcome.finish_reason)))
        if call.include_usage:
            yield _sse(
                {
                    "id": answer_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model_name,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": _usage(outcome),
                }
            )
        await _record(request, generation, stream=True)
        yield b"data: [DONE]\n\n"
    finally:
        generation.abandon()
        await asyncio.shield(release(request.user))


# Inputs one embeddings call may hold (OpenAI allows 2048; a CPU takes seconds per 100).
MAX_EMBEDDING_INPUTS = 256


def _embedding_inputs(body) -> list[str]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    if body.get("model") != embedding.current().name:
        raise not_found(
            f"There is no embedding model {body.get('model')!r}; use {embedding.current().name!r}.",
            "model",
            "model_not_found",
        )
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request("'input' must be a string or a non-empty list of strings.", "input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise bad_request(f"Send at most {MAX_EMBEDDING_INPUTS} inputs at once.", "input")
    if any(not text or len(text) > settings.CHAT_MAX_MESSAGE_CHARS for text in texts):
        raise bad_request(
            f"Each input must hold 1 to {settings.CHAT_MAX_MESSAGE_CHARS} characters.", "input"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != embedding.current().dimensions:
        raise bad_request(
            f"This model's vectors have {embedding.current().dimensions} dimensions.",
            "dimensions",
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise bad_request("'encoding_format' must be float or base64.", "encoding_format")
    return texts


def _encoded(vector, encoding_format):
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]


@token_required("embeddings")
async def embeddings(request):
    if refused := _only("POST", request):
        return refused
    try:
        body = parse_json(request.body)
    except JSONInputError as error:
        raise bad_request(str(error)) from None
    texts = _embedding_inputs(body)
    await sync_to_async(limits.check_daily_tokens)(request.api_token)
    started = time.monotonic()
    # The model's work runs beside the event loop, not on the request threads.
    vectors = await sync_to_async(embedding.embed_texts, thread_sensitive=False)(texts)
    tokens = await sync_to_async(embedding.count_tokens, thread_sensitive=False)(texts)
    await sync_to_async(services.record_call)(
        token=request.api_token,
        endpoint="embeddings",
        model_name=embedding.current().name,
        prompt_tokens=tokens,
        duration_ms=round((time.monotonic() - started) * 1000),
        request=request,
    )
    encoding_format = body.get("encoding_format") or "float"
    return JsonResponse(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encoded(v, encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "model": embedding.current().name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
