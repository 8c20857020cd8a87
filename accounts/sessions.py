"""The session engine: Django's database sessions that keep their sign-in record.

Django gives a session a new key at each step up in privilege (password sign-in, second
factor, password change). The ``SignInSession`` row of a session follows its key here, so a
session stays known, and can be ended from elsewhere, whichever code changed its key.
"""

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore

from accounts.models import SignInSession


class SessionStore(DatabaseSessionStore):
    def cycle_key(self):
        old_key = self.session_key
        super().cycle_key()
        if old_key and old_key != self.session_key:
            SignInSession.objects.filter(session_key=old_key).update(session_key=self.session_key)

    def flush(self):
        """Forget the sign-in record too when the session is emptied (signing out, or
        another user signing in on the same browser)."""
        old_key = self.session_key
        super().flush()
        if old_key:
            SignInSession.objects.filter(session_key=old_key).delete()
