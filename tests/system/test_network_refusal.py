"""A server whose allowed networks do not include loopback refuses its loopback clients."""

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.support.server import free_port, served_site

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(
        tmp_path_factory.mktemp("var"), free_port(), INTERNAL_NETWORKS="10.0.0.0/8"
    ) as running:
        yield running


def test_a_page_request_from_outside_the_allowed_networks_gets_403(site):
    status, headers, body = site.request("/")

    assert status == 403
    assert b"Not available from your network" in body
    assert "default-src 'self'" in headers["content-security-policy"]


def test_a_websocket_from_outside_the_allowed_networks_is_refused_before_accept(site):
    async def attempt():
        async with websockets.connect(
            f"wss://localhost:{site.port}/ws/chat/",
            ssl=site.tls_context(),
            origin=f"https://localhost:{site.port}",
            open_timeout=10,
        ):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(attempt())

    assert refused.value.response.status_code == 403
    assert "network.refused: websocket /ws/chat/ from 127.0.0.1" in site.log()


def test_the_refusal_is_logged_with_the_client_address(site):
    site.request("/healthz")

    assert "network.refused: HTTP GET /healthz from 127.0.0.1" in site.log()
