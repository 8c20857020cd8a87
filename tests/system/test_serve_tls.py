"""`manage.py serve` as a real process on a fresh state directory, reached over real TLS."""

import asyncio
import ipaddress
import re
import socket
import ssl
import time

import pytest
import websockets
from cryptography import x509

from tests.support.browserless import SignedInClient
from tests.support.personas import PASSWORD
from tests.support.production import connect
from tests.support.server import free_port, manage, served_site

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        yield running


def _peer_certificate(site, server_hostname: str) -> x509.Certificate:
    context = site.tls_context()
    with (
        socket.create_connection(("127.0.0.1", site.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_the_handshake_verifies_against_the_generated_ca(site):
    cert = _peer_certificate(site, "localhost")

    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    addresses = sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in addresses
    assert ipaddress.ip_address("::1") in addresses


def test_the_certificate_is_valid_for_the_loopback_address_itself(site):
    cert = _peer_certificate(site, "127.0.0.1")

    issuer = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert issuer == "Private Chat local CA"


def test_a_client_refuses_the_certificate_for_a_name_it_does_not_carry(site):
    with pytest.raises(ssl.SSLCertVerificationError):
        _peer_certificate(site, "chat.example.com")


def test_a_client_that_does_not_trust_the_local_ca_refuses_the_connection(site):
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", site.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")


def test_plaintext_http_on_the_port_gets_no_http_answer(site):
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass

    assert b"HTTP/1" not in received
    assert b"status" not in received


def test_the_start_page_sends_a_visitor_to_sign_in(site):
    status, headers, _ = site.request("/")

    assert status == 302
    assert headers["location"] == "/accounts/login/"
    assert headers["strict-transport-security"].startswith("max-age=31536000")


def test_responses_carry_the_security_headers(site):
    status, headers, _ = site.request("/accounts/login/")

    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert "server" not in headers


def test_health_is_ok_once_the_embedded_worker_has_loaded_the_model(site):
    deadline = time.monotonic() + 120
    status, body = site.json("/healthz")
    while status != 200 and time.monotonic() < deadline:
        # Before its first heartbeat the worker is not listed at all.
        assert body["checks"]["inference"]["error"] in (
            "workers are loading",
            "no inference worker is ready",
        ), body
        time.sleep(0.5)
        status, body = site.json("/healthz")

    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is True
    (worker,) = body["checks"]["inference"]["workers"]
    assert (worker["state"], worker["model"]) == ("ready", "SmolLM2-135M-Instruct")


def test_the_stylesheet_is_served_locally_from_the_collected_files(site):
    _, _, page = site.request("/accounts/login/")
    stylesheet = re.search(rb'href="(/static/css/site\.[0-9a-f]+\.css)"', page)
    assert stylesheet, "the page links a hashed stylesheet under /static/"

    status, headers, body = site.request(stylesheet.group(1).decode())

    assert status == 200
    assert headers["content-type"].startswith("text/css")
    assert "immutable" in headers["cache-control"]
    assert b"--accent" in body


def test_the_page_refers_to_no_other_origin(site):
    _, _, page = site.request("/accounts/login/")

    assert not re.search(rb'(src|href)="(https?:)?//', page)


def test_serve_prints_the_url_and_where_the_local_ca_is(site):
    log = site.log()

    assert f"https://127.0.0.1:{site.port}/" in log
    assert str(site.ca_cert) in log


def test_a_websocket_message_over_one_mebibyte_is_closed_with_1009_and_a_reason(site):
    manage("createuser", "maxine", "--password-stdin", env=site.env, stdin=PASSWORD)
    cookie = SignedInClient(site).sign_in("maxine", PASSWORD).cookie_header()

    async def send_too_much():
        async with connect(site, cookie) as socket:
            await socket.send("x" * (1024 * 1024 + 1))
            try:
                await asyncio.wait_for(socket.recv(), 20)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd
        return None

    received = asyncio.run(send_too_much())

    assert received is not None, "the server sent no close frame"
    assert received.code == 1009
    assert "exceeds payload limit" in received.reason
