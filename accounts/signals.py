"""News from accounts for higher layers, which must not be imported here.

Both are sent inside the service function's transaction, so a receiver's changes (and its
audit events) commit or roll back with it. Receivers take ``actor`` and ``user``.
"""

from django.dispatch import Signal

# A user can no longer sign in (accounts.services.deactivate_user).
user_deactivated = Signal()
# A user's second factors were removed by an admin (accounts.services.reset_two_factor):
# anything that stood on the old second factor must end.
second_factor_reset = Signal()
