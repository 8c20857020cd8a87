"""Tokens end with what they stood on: an active account and its second factor; an erased
account loses them altogether."""

from django.dispatch import receiver

from accounts.signals import second_factor_reset, user_deactivated, user_erasing
from api import services


@receiver(user_deactivated, dispatch_uid="api.revoke_on_deactivation")
def revoke_on_deactivation(sender, *, actor, user, **kwargs):
    services.revoke_tokens_of(actor=actor, user=user, reason="user_deactivated")


@receiver(second_factor_reset, dispatch_uid="api.revoke_on_second_factor_reset")
def revoke_on_second_factor_reset(sender, *, actor, user, **kwargs):
    services.revoke_tokens_of(actor=actor, user=user, reason="second_factor_reset")


@receiver(user_erasing, dispatch_uid="api.delete_on_erasure")
def delete_on_erasure(sender, *, actor, user, **kwargs) -> dict[str, int]:
    services.revoke_tokens_of(actor=actor, user=user, reason="user_erased")
    tokens = user.api_tokens.count()
    user.api_tokens.all().delete()
    return {"api_tokens": tokens} if tokens else {}
