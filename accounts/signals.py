"""News from accounts for the apps above it (which accounts never imports)."""

from django.dispatch import Signal

# Sent by accounts.erasure.erase_user with ``user`` and ``actor``, inside the erasure's
# transaction and before the user's data keys are destroyed. Each app deletes its rows of
# the user and returns a dict of counts ({"conversations": 3}) for the audit event.
user_erasing = Signal()
