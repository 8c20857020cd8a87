"""ASGI entry point: Django for HTTP, Channels for websockets.

Websockets pass the internal-network check first, then the Origin check (the HTTP CSRF
check's rule: scheme, host and port must be one of CSRF_TRUSTED_ORIGINS), then session
authentication and the second-factor check, then the URL router. Every refusal before
accept is recorded as websocket.refused.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.http import is_same_domain  # noqa: E402

from accounts.websocket import AuditWebsocketRefusals, RequireVerifiedSession  # noqa: E402
from core.network import InternalNetworkASGIMiddleware  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402


class TrustedOriginValidator(OriginValidator):
    """Accept a websocket only from an Origin in CSRF_TRUSTED_ORIGINS, compared as Django's
    CSRF check compares them: scheme, host and port exactly, or a subdomain for an entry
    with ``*.``. A browser sends ``Origin: https://host:port`` on a wss connection, so the
    list settings builds from ALLOWED_HOSTS and PUBLIC_PORT is exactly the site's pages.
    (AllowedHostsOriginValidator compares host names only: any scheme and port would do.)
    The list is read for each connection, so it follows the settings."""

    def __init__(self, application):
        super().__init__(application, allowed_origins=())

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None or not parsed_origin.scheme or not parsed_origin.netloc:
            return False
        if parsed_origin.path or parsed_origin.params or parsed_origin.query:
            return False
        if parsed_origin.fragment or "@" in parsed_origin.netloc:
            return False
        netloc = parsed_origin.netloc.lower()
        for trusted in settings.CSRF_TRUSTED_ORIGINS:
            scheme, _, trusted_netloc = trusted.lower().partition("://")
            if scheme != parsed_origin.scheme:
                continue
            if trusted_netloc.startswith("*."):
                if is_same_domain(netloc, trusted_netloc[1:]):
                    return True
            elif netloc == trusted_netloc:
                return True
        return False


application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": InternalNetworkASGIMiddleware(
            AuditWebsocketRefusals(
                TrustedOriginValidator(
                    AuthMiddlewareStack(RequireVerifiedSession(URLRouter(websocket_urlpatterns)))
                )
            )
        ),
    }
)
