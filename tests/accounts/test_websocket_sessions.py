"""Open websockets close when their user's sessions are ended."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.db import connections

from accounts import services
from accounts.websocket import CLOSE_SESSION_ENDED, VerifiedSessionConsumer
from tests.support.websockets import communicator_for

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(client):
    communicator = communicator_for(client)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"ping": 1})
    assert await communicator.receive_json_from() == {"pong": 1}
    return communicator


async def closed_with(communicator, timeout=3):
    message = await communicator.receive_output(timeout=timeout)
    await communicator.wait()
    await sync_to_async(connections.close_all)()
    return message


async def test_an_admin_reset_closes_the_users_open_socket(employee_client, employee, admin_user):
    communicator = await open_socket(employee_client)

    await sync_to_async(services.reset_two_factor)(
        actor=admin_user, user=employee, reason="lost phone"
    )

    message = await closed_with(communicator)
    assert message == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}


async def test_deactivation_closes_the_users_open_socket(employee_client, employee, admin_user):
    communicator = await open_socket(employee_client)

    await sync_to_async(services.deactivate_user)(actor=admin_user, user=employee)

    assert (await closed_with(communicator))["code"] == CLOSE_SESSION_ENDED


async def test_another_users_socket_stays_open(
    employee_client, employee, other_employee, admin_user
):
    communicator = await open_socket(employee_client)

    await sync_to_async(services.reset_two_factor)(
        actor=admin_user, user=other_employee, reason="new phone"
    )

    await communicator.send_json_to({"ping": 2})
    assert await communicator.receive_json_from() == {"pong": 2}
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()


async def test_a_session_ended_without_a_message_is_noticed_by_the_periodic_check(
    employee_client, settings
):
    settings.SESSION_RECHECK_SECONDS = 0.2
    communicator = await open_socket(employee_client)

    await Session.objects.all().adelete()

    assert (await closed_with(communicator))["code"] == CLOSE_SESSION_ENDED


class _Relay(VerifiedSessionConsumer):
    def __init__(self):
        super().__init__()
        self.handled = []

    async def inference_delta(self, event):
        self.handled.append(event["text"])


async def test_a_message_goes_to_its_handler_without_a_hop_to_a_thread(monkeypatch):
    """channels' own dispatch closes stale database connections on a thread before every
    message (for an answer, before each piece of text); these consumers' handlers reach the
    database only through database_sync_to_async, which does that itself."""
    hops = []

    async def counted():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counted)
    relay = _Relay()

    await relay.dispatch({"type": "inference.delta", "text": "Paris"})

    assert relay.handled == ["Paris"]
    assert hops == []
    with pytest.raises(ValueError, match="No handler for message type nobody"):
        await relay.dispatch({"type": "nobody.listens"})
