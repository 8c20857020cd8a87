"""`manage.py loadtest`: many verified users chatting at once on the production profile.

A throwaway site on loopback (``manage.py serve`` over TLS, a separate ``inference_worker``,
Redis and a throwaway PostgreSQL database), N users signed in with password and
authenticator code, each on a websocket of their own, each sending several messages in one
conversation with a pause between them. Afterwards every conversation is read back over
HTTPS: every answer that ended with ``chat.done`` must be stored, complete, with exactly the
text that was streamed.
"""

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chat.bench.metrics import Stream, percentile
from chat.bench.site import FRAME_TIMEOUT, Site, throwaway_database

QUESTIONS = (
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "Give me one tip for a good night's sleep.",
    "What is two plus two?",
    "Suggest a name for a friendly office plant.",
    "Explain in one sentence what a spreadsheet is.",
)


@dataclass
class Exchange:
    """One question and its streamed answer, as the user saw it."""

    user: str
    stream: Stream
    text: str = ""
    message_id: str = ""
    conversation_id: str = ""
    outcome: str = ""  # "stop" / "length" (answered), a finish_reason, or "error <code>"


@dataclass
class UserRun:
    username: str
    cookie: str
    exchanges: list[Exchange] = field(default_factory=list)
    conversation_id: str | None = None


async def _exchange(socket, run: UserRun, question: str, tokens: int, index: int) -> Exchange:
    frame = {
        "type": "chat.send",
        "conversation": run.conversation_id,
        "content": question,
        "client_id": f"load-{index}",
        "params": {"max_new_tokens": tokens},
    }
    exchange = Exchange(user=run.username, stream=Stream(start=time.perf_counter()))
    await socket.send(json.dumps(frame))
    parts: list[str] = []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), FRAME_TIMEOUT))
        now = time.perf_counter()
        kind = message.get("type")
        if kind == "chat.started":
            exchange.message_id = message["message"]
            exchange.conversation_id = message["conversation"]
            run.conversation_id = message["conversation"]
        elif kind == "chat.delta" and message.get("text"):
            parts.append(message["text"])
            exchange.stream.add(now, sum(map(len, parts)))
        elif kind == "chat.done":
            exchange.stream.end = now
            exchange.stream.tokens = int((message.get("usage") or {}).get("completion_tokens") or 0)
            exchange.outcome = message.get("finish_reason") or "missing finish_reason"
            break
        elif kind == "error":
            exchange.stream.end = now
            exchange.outcome = f"error {message.get('code')}"
            break
    exchange.text = "".join(parts)
    if exchange.outcome not in ("stop", "length"):
        exchange.stream.error = exchange.outcome
    return exchange


async def _one_user(site: Site, run: UserRun, *, messages, tokens, pause, start_within, seed):
    import websockets

    # Timing jitter for a load test, seeded so that runs repeat; nothing secret.
    rng = random.Random(seed)  # noqa: S311
    await asyncio.sleep(rng.uniform(0, start_within))
    async with websockets.connect(
        f"wss://localhost:{site.port}/ws/chat/",
        ssl=site.tls_context(),
        origin=site.base_url,
        additional_headers={"Cookie": run.cookie},
        open_timeout=60,
        max_size=2**22,
    ) as socket:
        for index in range(messages):
            question = QUESTIONS[(seed + index) % len(QUESTIONS)]
            try:
                exchange = await _exchange(socket, run, question, tokens, index)
            except TimeoutError:
                exchange = Exchange(run.username, Stream(start=time.perf_counter()))
                exchange.outcome = exchange.stream.error = "no frame in time"
            run.exchanges.append(exchange)
            if exchange.outcome.startswith("error") or exchange.outcome == "no frame in time":
                continue
            await asyncio.sleep(rng.uniform(0, pause))


def _stored_check(site: Site, runs: list[UserRun]) -> list[str]:
    """Problems found when reading each conversation back; empty when all answers match."""
    problems = []
    for run in runs:
        if not run.conversation_id:
            continue
        body = json.loads(site.get(f"/chat/api/conversations/{run.conversation_id}", run.cookie))
        stored = {m["id"]: m for m in body["messages"]}
        for exchange in run.exchanges:
            if exchange.outcome not in ("stop", "length"):
                continue
            message = stored.get(exchange.message_id)
            if message is None:
                problems.append(f"{run.username}: answer {exchange.message_id} is not stored")
            elif message["status"] != "complete":
                problems.append(
                    f"{run.username}: answer {exchange.message_id} stored as {message['status']}"
                )
            elif message["content"] != exchange.text:
                problems.append(
                    f"{run.username}: answer {exchange.message_id} stored with "
                    f"{len(message['content'])} characters, {len(exchange.text)} streamed"
                )
    return problems


def summary(runs: list[UserRun], elapsed: float, problems: list[str]) -> dict:
    exchanges = [e for run in runs for e in run.exchanges]
    answered = [e for e in exchanges if e.outcome in ("stop", "length")]
    ttfts = [e.stream.ttft() for e in answered if e.stream.points]
    outcomes = Counter(e.outcome for e in exchanges)
    errors = {k: v for k, v in outcomes.items() if k not in ("stop", "length")}
    tokens = sum(e.stream.tokens for e in answered)
    return {
        "users": len(runs),
        "requests": len(exchanges),
        "done": sum(1 for e in exchanges if not e.outcome.startswith(("error", "no frame"))),
        "answered": len(answered),
        "errors_by_code": errors,
        "stored_complete": len(answered) - len(problems),
        "storage_problems": problems,
        "ttft_p50_ms": _ms(percentile(ttfts, 0.5)),
        "ttft_p95_ms": _ms(percentile(ttfts, 0.95)),
        "ttft_max_ms": _ms(max(ttfts) if ttfts else None),
        "tokens": tokens,
        "elapsed_s": round(elapsed, 1),
        "aggregate_tps": round(tokens / elapsed, 2) if elapsed > 0 else None,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def run_load(
    *,
    run_dir: Path,
    model_dir: Path,
    users: int,
    messages: int,
    tokens: int,
    pause: float,
    start_within: float,
    time_limit: float,
    postgres_url: str,
    redis_url: str,
    say=print,
) -> dict:
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(throwaway_database(postgres_url, prefix="load"))
        site = Site(
            run_dir / "site", model_dir, {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        )
        names = [f"load{index:03d}" for index in range(users)]
        say(f"preparing {site.var_dir} ({users} users)")
        site.prepare(names)
        stack.callback(site.stop)
        site.start(separate_worker=True)
        say(f"serving on {site.base_url}/ with a separate inference worker; signing users in")
        runs = [UserRun(name, site.sign_in(name)) for name in names]
        say(f"{users} users signed in; each sends {messages} messages of up to {tokens} tokens")

        async def everyone():
            await asyncio.gather(
                *(
                    _one_user(
                        site,
                        run,
                        messages=messages,
                        tokens=tokens,
                        pause=pause,
                        start_within=start_within,
                        seed=index,
                    )
                    for index, run in enumerate(runs)
                )
            )

        started = time.perf_counter()
        try:
            asyncio.run(asyncio.wait_for(everyone(), time_limit))
            timed_out = False
        except TimeoutError:
            timed_out = True
        elapsed = time.perf_counter() - started
        problems = _stored_check(site, runs)
        result = summary(runs, elapsed, problems)
        result["timed_out"] = timed_out
        result["expected_requests"] = users * messages
        return result
