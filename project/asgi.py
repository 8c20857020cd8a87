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

from accounts.websocket import AuditWebsocketRefusals, RequireVerifiedSession  # noqa: E402
from core.network import InternalNetworkASGIMiddleware  # noqa: E402
from core.origins import TrustedOriginValidator  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402


def websocket_application(router):
    """The layers every websocket passes, around ``router``: the internal-network check,
    the audit of refusals, the Origin check, the session and its second factor. Tests wrap
    their own routes in the same stack."""
    return InternalNetworkASGIMiddleware(
        AuditWebsocketRefusals(
            TrustedOriginValidator(AuthMiddlewareStack(RequireVerifiedSession(router)))
        )
    )


application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": websocket_application(URLRouter(websocket_urlpatterns)),
    }
)
