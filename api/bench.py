"""The API next to the websocket: the same questions, greedy, at the same concurrency, on one
served site (embedded profile), so their throughputs compare like for like.

Each level asks N questions at once twice: over N chat sockets (chat.bench.site) and as N
streamed /v1/chat/completions calls with the official ``openai`` client, each user with a
token of their own. Text arrival is timed the same way on both paths (characters, turned
into tokens by the answer's reported token count: chat.bench.metrics).
"""

import asyncio
import time

import openai

from chat.bench.local import prompt_for
from chat.bench.metrics import Stream, summarise
from chat.bench.site import FRAME_TIMEOUT, LEVEL_TIMEOUT, Site, _run


def tokens_for(site: Site, users: list[str]) -> list[str]:
    """A chat-scoped API token for each user (signed in once, so they have a second factor)."""
    return [
        _run(
            ["manage.py", "create_api_token", user, "--name", "bench", "--scopes", "chat"],
            site.env,
        )
        .strip()
        .splitlines()[-1]
        for user in users
    ]


async def _ask(client: openai.AsyncOpenAI, model: str, content: str, tokens: int) -> Stream:
    stream = Stream(start=time.perf_counter())
    characters = 0
    try:
        chunks = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": content}],
            max_tokens=tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in chunks:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].delta.content:
                characters += len(chunk.choices[0].delta.content)
                stream.add(now, characters)
            if chunk.usage is not None:
                stream.tokens = chunk.usage.completion_tokens
                stream.end = now
    except openai.APIError as error:
        stream.error = f"{type(error).__name__}: {error}"
        stream.end = time.perf_counter()
    return stream


async def ask_together(site: Site, api_tokens: list[str], model: str, tokens: int):
    clients = [
        openai.AsyncOpenAI(
            api_key=token,
            base_url=f"{site.base_url}/v1",
            http_client=openai.DefaultAsyncHttpxClient(verify=site.tls_context()),
            max_retries=0,
            timeout=FRAME_TIMEOUT,
        )
        for token in api_tokens
    ]
    try:
        return await asyncio.wait_for(
            asyncio.gather(*(_ask(c, model, prompt_for(i), tokens) for i, c in enumerate(clients))),
            LEVEL_TIMEOUT,
        )
    finally:
        for client in clients:
            await client.close()


def run(site: Site, *, levels: list[int], tokens: int, model: str, say=print) -> dict:
    """Per level: the websocket's and the API's summaries."""
    users = [f"bench{index:02d}" for index in range(max(levels))]
    cookies = [site.sign_in(user) for user in users]
    api_tokens = tokens_for(site, users)
    say(f"  {len(users)} users signed in, each with a token; warming up")
    asyncio.run(site.ask_together(cookies[:1], 4))
    asyncio.run(ask_together(site, api_tokens[:1], model, 4))
    results = {}
    for count in levels:
        websocket = summarise(asyncio.run(site.ask_together(cookies[:count], tokens)))
        api = summarise(asyncio.run(ask_together(site, api_tokens[:count], model, tokens)))
        results[str(count)] = {"websocket": websocket, "api": api}
        say(
            f"  {count} clients: websocket {websocket['aggregate_tps']} tok/s, API "
            f"{api['aggregate_tps']} tok/s"
        )
    return results
