"""Websocket routes of every app, gathered for project.asgi."""

# The chat socket (/ws/chat/) is added by the chat app; until then every websocket path is
# unknown and closed after the network and origin checks.
websocket_urlpatterns: list = []
