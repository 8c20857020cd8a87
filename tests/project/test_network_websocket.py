import ipaddress

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from core.network import InternalNetworkASGIMiddleware, NetworkPolicy

# Consumers close stale database connections, and refusals are written to the audit log.
pytestmark = pytest.mark.django_db(transaction=True)


class EchoClientAddress(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()
        await self.send(text_data=self.scope["client"][0])


def _policy(trusted=()):
    return NetworkPolicy(
        [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")],
        [ipaddress.ip_network(n) for n in trusted],
    )


def _from(address, app):
    async def with_client(scope, receive, send):
        return await app(dict(scope, client=[address, 50000]), receive, send)

    return with_client


async def _connect(address, *, headers=None, trusted=()):
    app = InternalNetworkASGIMiddleware(EchoClientAddress.as_asgi(), policy=_policy(trusted))
    communicator = WebsocketCommunicator(_from(address, app), "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect()
    received = await communicator.receive_from() if connected else None
    await communicator.disconnect()
    return connected, received


async def test_an_intranet_websocket_is_accepted():
    assert await _connect("10.1.1.1") == (True, "10.1.1.1")


async def test_an_outside_websocket_is_closed_before_accept():
    connected, _ = await _connect("198.51.100.7")

    assert connected is False


async def test_an_outside_ipv6_websocket_is_closed_before_accept():
    assert (await _connect("2001:db8::9"))[0] is False
    assert await _connect("fd00::9") == (True, "fd00::9")


async def test_a_trusted_proxy_hands_the_real_client_address_to_the_consumer():
    connected, address = await _connect(
        "10.0.0.2", headers=[(b"x-forwarded-for", b"10.7.7.7")], trusted=["10.0.0.2/32"]
    )

    assert (connected, address) == (True, "10.7.7.7")


async def test_an_outsider_behind_a_trusted_proxy_is_refused():
    connected, _ = await _connect(
        "10.0.0.2", headers=[(b"x-forwarded-for", b"198.51.100.7")], trusted=["10.0.0.2/32"]
    )

    assert connected is False


async def test_the_project_websocket_stack_refuses_outsiders(settings):
    from project.asgi import application

    communicator = WebsocketCommunicator(
        _from("198.51.100.7", application),
        "/ws/chat/",
        headers=[(b"origin", b"https://localhost:8443"), (b"host", b"localhost:8443")],
    )
    connected, code = await communicator.connect()
    await communicator.disconnect()

    assert connected is False
    assert code == 4003
