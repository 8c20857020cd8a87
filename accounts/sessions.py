"""The session engine: Django's database sessions, stored under a hash of their key, that
keep their sign-in record.

The browser's cookie holds the session key; the database holds only
``hashed_session_key(key)``, in django_session and in ``SignInSession``, so a copy of the
database (a backup, a read-only replica) signs nobody in.

Django gives a session a new key at each step up in privilege (password sign-in, second
factor, password change). The ``SignInSession`` row of a session follows its key here, so a
session stays known, and can be ended from elsewhere, whichever code changed its key.
"""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from accounts.models import SignInSession, hashed_session_key


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self):
        try:
            return self.model.objects.get(
                session_key=hashed_session_key(self.session_key), expire_date__gt=timezone.now()
            )
        except (self.model.DoesNotExist, SuspiciousOperation):
            self._session_key = None
            return None

    async def _aget_session_from_db(self):
        try:
            return await self.model.objects.aget(
                session_key=hashed_session_key(self.session_key), expire_date__gt=timezone.now()
            )
        except (self.model.DoesNotExist, SuspiciousOperation):
            self._session_key = None
            return None

    def exists(self, session_key):
        return self.model.objects.filter(session_key=hashed_session_key(session_key)).exists()

    async def aexists(self, session_key):
        return await self.model.objects.filter(
            session_key=hashed_session_key(session_key)
        ).aexists()

    def create_model_instance(self, data):
        return self.model(
            session_key=hashed_session_key(self._get_or_create_session_key()),
            session_data=self.encode(data),
            expire_date=self.get_expiry_date(),
        )

    async def acreate_model_instance(self, data):
        return self.model(
            session_key=hashed_session_key(await self._aget_or_create_session_key()),
            session_data=self.encode(data),
            expire_date=await self.aget_expiry_date(),
        )

    def delete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is not None:
            self.model.objects.filter(session_key=hashed_session_key(session_key)).delete()

    async def adelete(self, session_key=None):
        session_key = session_key or self.session_key
        if session_key is not None:
            await self.model.objects.filter(session_key=hashed_session_key(session_key)).adelete()

    def cycle_key(self):
        old_key = self.session_key
        super().cycle_key()
        if old_key and old_key != self.session_key:
            SignInSession.objects.filter(key_hash=hashed_session_key(old_key)).update(
                key_hash=hashed_session_key(self.session_key)
            )

    def flush(self):
        """Forget the sign-in record too when the session is emptied (signing out, or
        another user signing in on the same browser)."""
        old_key = self.session_key
        super().flush()
        if old_key:
            SignInSession.objects.filter(key_hash=hashed_session_key(old_key)).delete()
