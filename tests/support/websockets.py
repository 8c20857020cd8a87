"""The project's websocket stack for tests: with a test route, for tests of session checks,
and the real chat socket with helpers to send a question and read its answer.

The layers come from ``project.asgi.websocket_application`` (network, refusal audit, origin,
session, second factor); only the router behind them is a test consumer, because the chat
consumer is not what these tests are about.
"""

from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.urls import path

from accounts.websocket import VerifiedSessionConsumer
from project.asgi import application, websocket_application

ORIGIN = b"https://localhost:8443"


class SessionProbeConsumer(VerifiedSessionConsumer):
    """Accepts, answers pings; closes like every consumer when its session ends."""

    async def receive_json(self, content, **kwargs):
        await self.send_json({"pong": content.get("ping")})


def probe_application():
    return websocket_application(URLRouter([path("ws/test/", SessionProbeConsumer.as_asgi())]))


def communicator_for(client, *, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    """A websocket carrying the session cookie of a Django test client, from 10.0.0.50."""
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())
    app = probe_application()

    async def from_intranet(scope, receive, send):
        return await app(dict(scope, client=["10.0.0.50", 50000]), receive, send)

    return WebsocketCommunicator(
        from_intranet,
        "/ws/test/",
        headers=[
            (b"origin", origin),
            (b"host", b"localhost:8443"),
            (b"cookie", cookie.encode()),
        ],
    )


async def connect_with_session(client, *, origin: bytes = ORIGIN):
    communicator = communicator_for(client, origin=origin)
    connected, code = await communicator.connect()
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()
    return connected, code


# --- the chat socket -----------------------------------------------------------------------


def socket_for(client, *, origin=ORIGIN, address="10.0.0.60"):
    """The real chat socket through the whole ASGI stack, carrying the session cookie of a
    Django test client, from ``address``."""
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())

    async def from_address(scope, receive, send):
        return await application(dict(scope, client=[address, 40000]), receive, send)

    return WebsocketCommunicator(
        from_address,
        "/ws/chat/",
        headers=[(b"origin", origin), (b"host", b"localhost:8443"), (b"cookie", cookie.encode())],
    )


async def send(communicator, content="What is the capital of France?", conversation=None, **extra):
    frame = {
        "type": "chat.send",
        "conversation": conversation,
        "content": content,
        "client_id": "c1",
        **extra,
    }
    await communicator.send_json_to(frame)


async def until_done(communicator, timeout=5):
    """Every frame up to and including chat.done."""
    frames = []
    while not frames or frames[-1]["type"] != "chat.done":
        frames.append(await communicator.receive_json_from(timeout=timeout))
    return frames
