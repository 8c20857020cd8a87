"""Random frames at the chat socket: every one gets an answer, none breaks the socket or
raises on the server."""

import asyncio
import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import REPO
from tests.support.websockets import socket_for

pytestmark = pytest.mark.django_db(transaction=True)

KNOWN_TYPES = ["chat.send", "chat.stop", "chat.dance", "", None]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
frames = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=20)},
    optional={
        "conversation": st.none() | st.uuids().map(str) | st.text(max_size=40) | json_values,
        "content": st.text(max_size=300) | json_values | st.just("x" * 17000),
        "client_id": st.text(max_size=80) | json_values,
        "params": st.dictionaries(
            st.sampled_from(["temperature", "top_p", "max_new_tokens", "seed"]),
            json_values | st.floats(),
            max_size=3,
        )
        | json_values,
        "extra": json_values,
    },
)
# The test communicator cannot send empty frames; browsers never do for JSON anyway.
raw_texts = st.text(min_size=1, max_size=500) | frames.map(json.dumps) | json_values.map(json.dumps)
raw_bytes = st.binary(min_size=1, max_size=300)

TRIED = {"inputs": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_inputs_tried():
    """Say how many inputs were tried (docs/operations.md quotes it)."""
    yield
    report = REPO / "var" / "fuzz" / "chat-frames.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"{TRIED['inputs']} frames sent to the chat socket\n")
    print(f"\nfuzzed chat frames: {TRIED['inputs']} inputs")


async def exchange(client, payloads):
    communicator = socket_for(client)
    connected, _ = await communicator.connect()
    assert connected
    try:
        for kind, payload in payloads:
            TRIED["inputs"] += 1
            if kind == "text":
                await communicator.send_to(text_data=payload)
            else:
                await communicator.send_to(bytes_data=payload)
            reply = await communicator.receive_json_from(timeout=5)
            assert reply["type"] in ("error", "chat.started"), reply
            if reply["type"] == "error":
                assert reply["code"] and reply["detail"]
            # The socket still answers a well-formed frame.
            await communicator.send_json_to(
                {"type": "chat.stop", "conversation": "00000000-0000-0000-0000-000000000000"}
            )
            assert (await communicator.receive_json_from(timeout=5))["code"] == "not_found"
    finally:
        await communicator.disconnect()
        await sync_to_async(connections.close_all)()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payloads=st.lists(
        st.tuples(st.just("text"), raw_texts) | st.tuples(st.just("bytes"), raw_bytes),
        min_size=1,
        max_size=5,
    )
)
def test_random_frames_get_answers_and_leave_the_socket_usable(employee_client, caplog, payloads):
    with caplog.at_level(logging.ERROR):
        asyncio.run(exchange(employee_client, payloads))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
