import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.handlers.asgi import ASGIHandler

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED_TEXT = b"Not available from your network"


# The sign-in page is the one page served without signing in.
PAGE = "/accounts/login/"


def test_a_request_from_the_intranet_is_served(client):
    response = client.get(PAGE, REMOTE_ADDR="10.20.30.40", secure=True)

    assert response.status_code == 200


def test_a_request_from_outside_gets_a_403_page_that_says_what_to_do(client):
    response = client.get("/", REMOTE_ADDR="203.0.113.5", secure=True)

    assert response.status_code == 403
    assert REFUSED_TEXT in response.content
    assert b"VPN" in response.content


def test_static_files_are_refused_to_outsiders_too(client):
    response = client.get("/healthz", REMOTE_ADDR="203.0.113.5", secure=True)

    assert response.status_code == 403


def test_an_ipv6_outsider_is_refused_and_an_ipv6_insider_served(client):
    assert client.get("/", REMOTE_ADDR="2001:db8::1", secure=True).status_code == 403
    assert client.get(PAGE, REMOTE_ADDR="fd00::1", secure=True).status_code == 200


def test_a_forged_forwarded_for_header_does_not_let_an_outsider_in(client):
    response = client.get(
        "/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.0.0.1", secure=True
    )

    assert response.status_code == 403


def test_behind_a_trusted_proxy_the_forwarded_client_is_judged(client, settings):
    settings.TRUSTED_PROXIES = [__import__("ipaddress").ip_network("10.0.0.2/32")]

    outsider = client.get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5", secure=True
    )
    insider = client.get(
        PAGE, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.168.4.4", secure=True
    )

    assert outsider.status_code == 403
    assert insider.status_code == 200


def test_the_refusal_is_logged_with_the_address(client, caplog):
    with caplog.at_level("WARNING", logger="core.network"):
        client.get("/", REMOTE_ADDR="203.0.113.5", secure=True)

    assert "network.refused: HTTP GET / from 203.0.113.5" in caplog.text


def test_downstream_code_sees_the_client_address_not_the_proxy(rf, settings):
    import ipaddress

    from core.network import InternalNetworkMiddleware

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.2/32")]
    seen = {}

    def view(request):
        seen["addr"] = request.META["REMOTE_ADDR"]
        seen["proto"] = request.META.get("HTTP_X_FORWARDED_PROTO")
        from django.http import HttpResponse

        return HttpResponse("ok")

    middleware = InternalNetworkMiddleware(view)
    middleware(rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.168.4.4", secure=True))

    assert seen == {"addr": "192.168.4.4", "proto": None}


def test_only_a_trusted_proxy_may_claim_the_request_was_https(rf, settings):
    from django.http import HttpResponse

    from core.network import InternalNetworkMiddleware

    seen = {}

    def view(request):
        seen["proto"] = request.META.get("HTTP_X_FORWARDED_PROTO")
        return HttpResponse("ok")

    InternalNetworkMiddleware(view)(
        rf.get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_PROTO="https")
    )

    assert seen == {"proto": None}


async def _asgi_status(client_address: str) -> int:
    """The status Django's ASGI handler answers for GET PAGE from ``client_address``."""
    communicator = ApplicationCommunicator(
        ASGIHandler(),
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": PAGE,
            "raw_path": PAGE.encode(),
            "query_string": b"",
            "headers": [(b"host", b"localhost")],
            "client": [client_address, 50000],
            "server": ["localhost", 8443],
        },
    )
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=10)
    await communicator.receive_output(timeout=10)
    await communicator.wait(timeout=10)
    return start["status"]


async def test_the_middleware_refuses_on_the_async_path_as_well():
    assert await _asgi_status("203.0.113.5") == 403
    assert await _asgi_status("10.0.0.5") == 200
