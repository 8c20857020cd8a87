"""News from accounts for higher layers, which must not be imported here.

Each is sent inside the service function's transaction, so a receiver's changes (and its
audit events) commit or roll back with it. Receivers take ``actor`` and ``user``.
"""

from django.dispatch import Signal

# A user can no longer sign in (accounts.services.deactivate_user).
user_deactivated = Signal()
# A user's second factors were removed by an admin (accounts.services.reset_two_factor):
# anything that stood on the old second factor must end.
second_factor_reset = Signal()
# Sent by accounts.erasure.erase_user before the user's data keys are destroyed. Each app
# deletes its rows of the user and returns a dict of counts ({"conversations": 3}) for the
# audit event.
user_erasing = Signal()
