"""The upstream path's yardstick: N clients streaming straight from an OpenAI-compatible
engine, with the same prompts, system prompt and answer length as the web path's users, so
that `bench_chat --upstream` can set the web path (daphne, Redis, an upstream worker) beside
what the engine gives a direct client."""

import asyncio
import json
import time

import httpx

from chat.bench.local import prompt_for
from chat.bench.metrics import Stream, summarise
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


def run_direct(url: str, model: str, system: str, levels: list[int], tokens: int, say=print):
    """Per concurrency level, N clients asking at once straight from the engine."""
    base = api_base(url)

    async def level(count: int) -> list[Stream]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(_ask(client, base, model, system, i, tokens) for i in range(count))
                ),
                LEVEL_TIMEOUT,
            )

    asyncio.run(level(1))  # warm-up: the engine's first request loads its caches
    results = {"levels": {}}
    for count in levels:
        summary = summarise(asyncio.run(level(count)))
        results["levels"][str(count)] = summary
        say(
            f"  upstream direct: {count} clients, {summary['aggregate_tps']} tok/s aggregate, "
            f"{summary['completed']}/{count} completed"
        )
    return results
