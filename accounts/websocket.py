"""Websockets need the same verified session as pages, checked before accept and after.

``OTPMiddleware`` only runs for HTTP, so ``RequireVerifiedSession`` checks, for each socket,
that the session's user is active and signed in with a confirmed second factor of their own,
within the absolute session lifetime. ``VerifiedSessionConsumer`` is the base of every
consumer: it closes the socket when its session is ended (by its owner or an admin, a password
change, a reset, deactivation) and re-checks its session every SESSION_RECHECK_SECONDS in case that message
was missed.
"""

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from accounts.models import hashed_session_key
from accounts.services import SIGNED_IN_AT_KEY, user_group
from audit.log import record

logger = logging.getLogger(__name__)

# Close code for "your session ended": the page reloads and lands on sign-in.
CLOSE_SESSION_ENDED = 4401
REFUSAL_HOLDER = "refusal"


def session_problem(scope) -> str | None:
    """Why the socket's session may not be used, or None when it may. Runs in a thread."""
    user = scope.get("user")
    session = scope.get("session")
    if user is None or not user.is_authenticated or session is None:
        return "not_signed_in"
    if not user.is_active:
        return "inactive"
    if (
        session.session_key is None
        or not Session.objects.filter(
            session_key=hashed_session_key(session.session_key), expire_date__gt=timezone.now()
        ).exists()
    ):
        return "session_ended"
    signed_in_at = session.get(SIGNED_IN_AT_KEY)
    if signed_in_at is None or time.time() - signed_in_at > settings.SESSION_ABSOLUTE_LIFETIME:
        return "session_expired"
    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    if device is None or device.user_id != user.pk or not device.confirmed:
        return "second_factor_missing"
    return None


class AuditWebsocketRefusals:
    """Record every websocket closed before accept as websocket.refused, with the reason the
    layer that refused it left in the scope (an unknown Origin when none did)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        holder = {"accepted": False}

        async def watching_send(message):
            if message["type"] == "websocket.accept":
                holder["accepted"] = True
            elif message["type"] == "websocket.close" and not holder["accepted"]:
                holder["accepted"] = True  # record once
                user = holder.get("user")
                await sync_to_async(record)(
                    "websocket.refused",
                    actor=user if user is not None and user.is_authenticated else None,
                    outcome="denied",
                    scope=scope,
                    path=scope.get("path", "")[:200],
                    reason=holder.get("reason", "origin_not_allowed"),
                )
            await send(message)

        return await self.app(dict(scope, **{REFUSAL_HOLDER: holder}), receive, watching_send)


class RequireVerifiedSession:
    """Close, before accept, any websocket whose session has no verified second factor."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        problem = await sync_to_async(session_problem)(scope)
        if problem is None:
            return await self.app(scope, receive, send)
        if REFUSAL_HOLDER in scope:
            scope[REFUSAL_HOLDER].update(reason=problem, user=scope.get("user"))
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 4403})
        return None


class VerifiedSessionConsumer(AsyncJsonWebsocketConsumer):
    """A consumer that lives only as long as its user's verified session.

    Its subclasses reach the database only through ``database_sync_to_async``, which closes
    stale connections before and after each call on the database thread."""

    async def dispatch(self, message):
        # channels' own dispatch first hops to a thread to close stale database connections,
        # before every message: for a streamed answer, before every piece of text. Each hop
        # wakes a thread and the event loop again, on a host whose cores the model keeps busy.
        # Handlers here do that in their own database calls, so messages go straight to them.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.user = self.scope["user"]
        await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        self._watch = asyncio.create_task(self._recheck_session())
        await self.accept()

    async def disconnect(self, code):
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if getattr(self, "user", None) is not None:
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)

    async def session_revoked(self, event):
        key = self.scope["session"].session_key
        if key is None or hashed_session_key(key) in event.get("sessions", ()):
            await self.close(code=CLOSE_SESSION_ENDED)

    async def _recheck_session(self):
        while True:
            await asyncio.sleep(settings.SESSION_RECHECK_SECONDS)
            try:
                problem = await database_sync_to_async(self._session_problem)()
            except (OperationalError, InterfaceError) as error:
                # No session can be ended while the database is down either; the next round
                # checks again (ending sessions also closes sockets through the group).
                logger.warning("Could not re-check a websocket's session: %s", error)
                continue
            if problem is not None:
                await self.close(code=CLOSE_SESSION_ENDED)
                return

    def _session_problem(self):
        self.scope["user"].refresh_from_db(fields=["is_active"])
        return session_problem(self.scope)
