"""The internal-networks-only policy, applied to HTTP and to websockets.

One ``NetworkPolicy`` decides two things for every connection:

* which address the client has: the TCP peer, or, when that peer is one of
  ``TRUSTED_PROXIES``, the right-most address in ``X-Forwarded-For`` that is not itself a
  trusted proxy (addresses further left were written by the client and prove nothing);
* whether that address lies in ``INTERNAL_NETWORKS``.

``InternalNetworkMiddleware`` applies it to Django requests (403 page) and
``InternalNetworkASGIMiddleware`` to websockets (closed before accept). Both replace the
peer address with the client address so everything downstream (sessions, lockout, audit)
sees the real client, and send ``network_refused`` for each refusal (the audit app records it).
"""

import ipaddress
import logging
from collections.abc import Iterable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.dispatch import Signal
from django.shortcuts import render
from django.utils.decorators import sync_and_async_middleware

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str | None) -> Address | None:
    """An IP address from a peer or header value, or None when it is not one.

    Accepts the bracketed IPv6 form and IPv6 zone ids, and reduces IPv4-mapped IPv6
    addresses (``::ffff:10.1.2.3``) to IPv4 so they match IPv4 networks.
    """
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class NetworkPolicy:
    def __init__(self, internal_networks: Iterable[Network], trusted_proxies: Iterable[Network]):
        self.internal_networks = tuple(internal_networks)
        self.trusted_proxies = tuple(trusted_proxies)

    @classmethod
    def from_settings(cls) -> "NetworkPolicy":
        return cls(settings.INTERNAL_NETWORKS, settings.TRUSTED_PROXIES)

    @staticmethod
    def _within(address: Address, networks: tuple[Network, ...]) -> bool:
        return any(address.version == net.version and address in net for net in networks)

    def is_trusted_proxy(self, peer: str | None) -> bool:
        address = parse_address(peer)
        return address is not None and self._within(address, self.trusted_proxies)

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> Address | None:
        """The client's address, or None when it cannot be determined (then refuse)."""
        address = parse_address(peer)
        if address is None or not forwarded_for or not self._within(address, self.trusted_proxies):
            return address
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            hop_address = parse_address(hop)
            if hop_address is None:
                # A trusted proxy passed on something that is not an address.
                return None
            if not self._within(hop_address, self.trusted_proxies):
                return hop_address
        # Every hop is a trusted proxy: the left-most one is where the request began.
        return parse_address(hops[0])

    def allows(self, address: Address | None) -> bool:
        return address is not None and self._within(address, self.internal_networks)


PATH_LOGGED_MAX = 200

# Sent for every refused connection, with ``channel`` ("http" or "websocket"), ``path``,
# ``address`` (the client address, or None), ``peer`` (the TCP peer) and ``request`` or
# ``scope``. The audit app records it; the policy itself only decides.
network_refused = Signal()


def _announce_refusal(channel: str, path: str, address, peer, *, request=None, scope=None):
    """Tell the receivers; a receiver failing must not turn the refusal into a 500."""
    for _receiver, result in network_refused.send_robust(
        sender=NetworkPolicy,
        channel=channel,
        path=path[:PATH_LOGGED_MAX],
        address=address,
        peer=peer or "",
        request=request,
        scope=scope,
    ):
        if isinstance(result, Exception):
            logger.error("A receiver of network_refused failed: %r", result, exc_info=result)


def _refuse_http(request, address: Address | None):
    peer = request.META.get("REMOTE_ADDR")
    logger.warning(
        "network.refused: HTTP %s %s from %s (peer %s)",
        request.method,
        request.path,
        address or "an unknown address",
        peer,
    )
    request.META["REMOTE_ADDR"] = str(address) if address else ""
    _announce_refusal("http", request.path, address, peer, request=request)
    return render(request, "network_refused.html", status=403)


@sync_and_async_middleware
def InternalNetworkMiddleware(get_response):
    """Refuse HTTP requests from outside INTERNAL_NETWORKS with a 403 page."""
    policy = NetworkPolicy.from_settings()

    def allowed_address(request):
        """The client address when it may be served (REMOTE_ADDR then holds it), else None."""
        peer = request.META.get("REMOTE_ADDR")
        address = policy.client_address(peer, request.META.get("HTTP_X_FORWARDED_FOR"))
        if not policy.is_trusted_proxy(peer):
            # Only a trusted proxy may say the original request was HTTPS.
            request.META.pop("HTTP_X_FORWARDED_PROTO", None)
        if not policy.allows(address):
            request.refused_address = address
            return None
        request.META["REMOTE_ADDR"] = str(address)
        return address

    if iscoroutinefunction(get_response):

        async def middleware(request):
            if allowed_address(request) is None:
                return await sync_to_async(_refuse_http)(request, request.refused_address)
            return await get_response(request)

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            if allowed_address(request) is None:
                return _refuse_http(request, request.refused_address)
            return get_response(request)

    return middleware


def scope_header(scope, name: bytes) -> str | None:
    """A request header from an ASGI scope (repeated headers joined with commas)."""
    values = [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]
    return ",".join(values) if values else None


class InternalNetworkASGIMiddleware:
    """Close websockets from outside INTERNAL_NETWORKS before they are accepted."""

    def __init__(self, app, policy: NetworkPolicy | None = None):
        self.app = app
        self._policy = policy

    @property
    def policy(self) -> NetworkPolicy:
        if self._policy is None:
            self._policy = NetworkPolicy.from_settings()
        return self._policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        peer = client[0] if client else None
        address = self.policy.client_address(peer, scope_header(scope, b"x-forwarded-for"))
        if not self.policy.allows(address):
            logger.warning(
                "network.refused: websocket %s from %s (peer %s)",
                scope.get("path"),
                address or "an unknown address",
                peer,
            )
            await sync_to_async(_announce_refusal)(
                "websocket",
                scope.get("path", ""),
                address,
                peer,
                scope=dict(scope, client=[str(address) if address else "", 0]),
            )
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 4003})
            return None
        port = client[1] if client else 0
        return await self.app(dict(scope, client=[str(address), port]), receive, send)
