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


# --- the Origin: scheme, host and port, as the HTTP CSRF check compares them --------------


async def _chat_socket(client, origin: bytes):
    """The project's stack, with the session of a verified employee, from the intranet."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from project.asgi import application

    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    communicator = WebsocketCommunicator(
        _from("10.0.0.61", application),
        "/ws/chat/",
        headers=[(b"origin", origin), (b"host", b"localhost:8443"), (b"cookie", cookie.encode())],
    )
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()
    return connected


@pytest.mark.parametrize(
    "origin",
    [b"https://localhost:8443", b"https://127.0.0.1:8443", b"https://[::1]:8443"],
)
async def test_the_sites_own_https_origins_are_accepted(employee_client, origin):
    assert await _chat_socket(employee_client, origin) is True


@pytest.mark.parametrize(
    "origin",
    [
        b"https://127.0.0.1:1",
        b"http://127.0.0.1:8443",
        b"https://127.0.0.1",
        b"http://localhost",
        b"wss://localhost:8443",
        b"https://localhost:8443.evil.example",
        b"https://user@localhost:8443",
        b"https://evil.example",
        b"null",
    ],
)
async def test_another_scheme_or_port_of_an_allowed_host_is_refused_and_recorded(
    employee_client, origin
):
    from audit.models import AuditEvent

    assert await _chat_socket(employee_client, origin) is False

    event = await AuditEvent.objects.aget(action="websocket.refused")
    assert event.details["reason"] == "origin_not_allowed"


async def test_a_wildcard_host_accepts_its_subdomains_on_the_public_port_only(
    employee_client, settings
):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.corp.example:8443"]

    assert await _chat_socket(employee_client, b"https://chat.corp.example:8443") is True
    assert await _chat_socket(employee_client, b"https://chat.corp.example:9443") is False
    assert await _chat_socket(employee_client, b"https://localhost:8443") is False
