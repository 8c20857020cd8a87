"""ASGI entry point: Django for HTTP, Channels for websockets.

Websockets pass the internal-network check first, then the Origin check against
ALLOWED_HOSTS, then session authentication and the second-factor check, then the URL
router. Every refusal before accept is recorded as websocket.refused.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.websocket import AuditWebsocketRefusals, RequireVerifiedSession  # noqa: E402
from core.network import InternalNetworkASGIMiddleware  # noqa: E402
from project.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": InternalNetworkASGIMiddleware(
            AuditWebsocketRefusals(
                AllowedHostsOriginValidator(
                    AuthMiddlewareStack(RequireVerifiedSession(URLRouter(websocket_urlpatterns)))
                )
            )
        ),
    }
)
