"""The upstream path's yardstick: N clients streaming straight from an OpenAI-compatible
engine, with the same prompts, system prompt and answer length as the web path's users, so
that `bench_chat --upstream` can set the web path (daphne, Redis, an upstream worker) beside
what the engine gives a direct client. The two paths take turns, round after round, so that
whatever else the machine is doing weighs on both alike."""

import asyncio
import json
import time

import httpx

from chat.bench.local import prompt_for
from chat.bench.metrics import Stream, summarise_rounds
from chat.inference.upstream import api_base

LEVEL_TIMEOUT = 900


async def _ask(client: httpx.AsyncClient, base: str, model: str, system: str, index: int, tokens):
    body = {
        "model": model,
        "messages": [
            *([{"role": "system", "content": system}] if system else []),
            {"role": "user", "content": prompt_for(index)},
        ],
        "stream": True,
        "max_tokens": tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }
    stream = Stream(start=time.perf_counter())
    pieces = 0
    try:
        async with client.stream("POST", f"{base}/chat/completions", json=body) as response:
            if response.status_code != 200:
                stream.error = f"HTTP {response.status_code}"
                return stream
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                usage = chunk.get("usage")
                if isinstance(usage, dict) and usage.get("completion_tokens"):
                    stream.tokens = usage["completion_tokens"]
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        pieces += 1
                        stream.add(time.perf_counter(), pieces)
    except httpx.HTTPError as error:
        stream.error = type(error).__name__
    stream.end = time.perf_counter()
    # Engines without usage stream one token a piece.
    stream.tokens = stream.tokens or pieces
    return stream


def direct_level(base: str, model: str, system: str, count: int, tokens: int) -> list[Stream]:
    """``count`` clients asking at once straight from the engine at ``base`` (…/v1)."""

    async def level() -> list[Stream]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(_ask(client, base, model, system, i, tokens) for i in range(count))
                ),
                LEVEL_TIMEOUT,
            )

    return asyncio.run(level())


def compare(
    url: str,
    model: str,
    system: str,
    web_level,
    levels: list[int],
    tokens: int,
    rounds: int,
    say=print,
) -> tuple[dict, dict]:
    """The direct client and the web path side by side: per concurrency level, ``rounds``
    rounds of the same N questions, straight from the engine and then through the chat
    (``web_level(count)`` returns the streams of N users asking at once), one after the
    other, so both paths meet the same conditions on the machine. Returns both results."""
    base = api_base(url)
    direct_level(base, model, system, 1, 4)  # warm-up: the engine's first request loads caches
    direct: dict = {"levels": {}}
    web: dict = {"levels": {}}
    for count in levels:
        direct_rounds, web_rounds = [], []
        for _ in range(rounds):
            direct_rounds.append(direct_level(base, model, system, count, tokens))
            web_rounds.append(web_level(count))
        for name, results, measured in (
            ("upstream direct", direct, direct_rounds),
            ("upstream", web, web_rounds),
        ):
            summary = summarise_rounds(measured)
            results["levels"][str(count)] = summary
            say(
                f"  {name}: {count} at once, {rounds} rounds, median "
                f"{summary['aggregate_tps']} tok/s aggregate, "
                f"{summary['completed']}/{summary['streams']} completed"
            )
    return direct, web
