"""The OpenAI-compatible API with the official `openai` client, against a real
`manage.py serve` over TLS with the site's local CA, the real model in the embedded worker,
and a signed-in browser user on the chat socket beside it."""

import asyncio
import re
import sqlite3
import threading
import time

import openai
import pytest

from tests.support.browserless import SignedInClient
from tests.support.production import ask, wait_until_ready
from tests.support.server import free_port, manage, served_site

pytestmark = pytest.mark.system

PASSWORD = "api passphrase for the tests 7"
QUESTION = "What is the capital of France?"


def create_token(site, name, scopes="models,chat,embeddings", user="ada"):
    out = manage("create_api_token", user, "--name", name, "--scopes", scopes, env=site.env).strip()
    return out.splitlines()[-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("var")
    with served_site(var_dir, free_port()) as running:
        manage("createuser", "ada", "--password-stdin", env=running.env, stdin=PASSWORD)
        running.browser = SignedInClient(running).sign_in("ada", PASSWORD)
        wait_until_ready(running)
        running.token = create_token(running, "tests")
        yield running


def client_for(site, token=None) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=token or site.token,
        base_url=f"https://localhost:{site.port}/v1",
        http_client=openai.DefaultHttpxClient(verify=site.tls_context()),
        max_retries=0,
        # A loaded 2-core test machine makes a few tokens a second.
        timeout=300,
    )


def active_sequences(site) -> float:
    _, _, body = site.request("/metrics")
    match = re.search(rb"^llmchat_inference_active_sequences (\S+)$", body, re.MULTILINE)
    assert match, body[:500]
    return float(match.group(1))


def wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def test_it_lists_the_model(site):
    models = client_for(site).models.list()

    assert [m.id for m in models.data] == [
        "SmolLM2-135M-Instruct",
        "sentence-transformers/all-MiniLM-L6-v2",
    ]


def test_a_greedy_answer_equals_the_chat_pages(site):
    frames, page_text = asyncio.run(ask(site, site.browser.cookie_header(), QUESTION))
    assert frames[-1]["type"] == "chat.done", frames

    completion = client_for(site).chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=24,
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == page_text
    assert completion.choices[0].finish_reason == frames[-1]["finish_reason"]
    assert completion.usage.completion_tokens == frames[-1]["usage"]["completion_tokens"]
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_a_streamed_answer_equals_the_non_streamed_one_and_ends_with_usage(site):
    client = client_for(site)
    request = {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": 24,
    }
    whole = client.chat.completions.create(**request)

    chunks = list(
        client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
    )

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1
    assert finishing[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_a_stop_sequence_ends_the_answer_before_it(site):
    client = client_for(site)
    request = {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": QUESTION}],
        "temperature": 0,
        "max_tokens": 24,
    }
    whole = client.chat.completions.create(**request).choices[0].message.content
    words = whole.split()
    assert len(words) >= 4, whole
    stop = " " + words[2]

    stopped = client.chat.completions.create(**request, stop=[stop])

    assert stopped.choices[0].message.content == whole[: whole.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_a_client_that_goes_away_cancels_the_answer(site):
    client = client_for(site)
    stream = client.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        max_tokens=400,
        stream=True,
    )
    pieces = iter(stream)
    for _ in range(3):
        next(pieces)
    assert active_sequences(site) == 1

    stream.close()

    wait_for(lambda: active_sequences(site) == 0, "the worker drops the answer", timeout=30)


def test_api_callers_and_browser_users_share_the_decode_steps(site):
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(active_sequences(site))
            time.sleep(0.3)

    async def both():
        api_call = asyncio.to_thread(
            lambda: client_for(site).chat.completions.create(
                model="SmolLM2-135M-Instruct",
                messages=[{"role": "user", "content": "Tell me about the sea."}],
                max_tokens=40,
            )
        )
        page = ask(site, site.browser.cookie_header(), "Tell me about the sky.", max_new_tokens=40)
        return await asyncio.gather(api_call, page)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        completion, (frames, _) = asyncio.run(both())
    finally:
        stop.set()
        watcher.join()

    assert completion.choices[0].message.content
    assert frames[-1]["type"] == "chat.done"
    assert max(seen) == 2, seen


def test_errors_map_to_the_clients_exception_classes(site):
    client = client_for(site)
    question = [{"role": "user", "content": QUESTION}]

    with pytest.raises(openai.AuthenticationError):
        client_for(site, "llm-" + "x" * 48).models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=question, temperature=5
        )
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=question, max_tokens=0
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=question)


def test_scopes_are_enforced(site):
    chat_only = client_for(site, create_token(site, "chat only", scopes="chat"))

    with pytest.raises(openai.PermissionDeniedError):
        chat_only.models.list()
    answer = chat_only.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=4,
    )
    assert answer.choices[0].message.content


def test_more_answers_at_once_than_allowed_get_429_with_retry_after(site):
    client = client_for(site)
    long = {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "max_tokens": 400,
        "stream": True,
    }
    # CHAT_MAX_GENERATIONS_PER_USER is 2.
    first = client.chat.completions.create(**long)
    second = client.chat.completions.create(**long)
    try:
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**{**long, "stream": False})
        assert int(refused.value.response.headers["Retry-After"]) >= 1
    finally:
        first.close()
        second.close()
    wait_for(lambda: active_sequences(site) == 0, "both answers are cancelled", timeout=60)


def _set_expiry_in_the_past(site, token):
    with sqlite3.connect(site.var_dir / "db.sqlite3") as db:
        db.execute(
            "UPDATE api_apitoken SET expires_at = '2000-01-01 00:00:00' WHERE prefix = ?",
            [token[:12]],
        )


def test_a_revoked_and_an_expired_token_are_refused(site):
    revoked = create_token(site, "to revoke")
    expired = create_token(site, "to expire")
    manage("revoke_api_token", "ada", "to revoke", env=site.env)
    _set_expiry_in_the_past(site, expired)

    for token in (revoked, expired):
        with pytest.raises(openai.AuthenticationError) as refused:
            client_for(site, token).models.list()
        assert "revoked" in str(refused.value) or "expired" in str(refused.value)


def test_the_token_is_not_in_any_database_file(site):
    token = create_token(site, "secret keeper")
    client_for(site, token).models.list()

    files = [p for p in site.var_dir.iterdir() if p.name.startswith("db.sqlite3")]
    contents = b"".join(p.read_bytes() for p in files)
    assert token[:12].encode() in contents
    assert token.encode() not in contents
    assert token[12:].encode() not in contents


def test_the_api_sets_no_cookie_and_ignores_a_session(site):
    status, headers, _ = site.request(
        "/v1/models", headers={"Cookie": site.browser.cookie_header()}
    )

    assert status == 401
    assert "set-cookie" not in headers
    status, _, _ = site.request(f"/v1/models?api_key={site.token}")
    assert status == 401


def test_embeddings_are_unit_vectors_that_place_like_texts_together(site):
    client = client_for(site)

    # The client asks for base64 unless told otherwise; both encodings are checked.
    packed = client.embeddings.create(
        model="sentence-transformers/all-MiniLM-L6-v2",
        input=["a cat sat on the mat", "a kitten slept on the rug", "stock prices fell"],
    )
    plain = client.embeddings.create(
        model="sentence-transformers/all-MiniLM-L6-v2",
        input="a cat sat on the mat",
        encoding_format="float",
    )

    cat, kitten, stocks = (d.embedding for d in packed.data)
    assert len(cat) == 384
    assert sum(x * x for x in cat) == pytest.approx(1.0, abs=1e-4)
    assert plain.data[0].embedding == pytest.approx(cat, abs=1e-5)

    def similarity(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert similarity(cat, kitten) > similarity(cat, stocks) + 0.2
    assert packed.usage.prompt_tokens > 0
