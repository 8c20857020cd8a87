"""django-axes hooks: which address a sign-in comes from, and the page a locked-out user sees."""

from axes.helpers import get_cool_off
from django.shortcuts import render
from django.utils import timezone


def client_ip(request) -> str:
    """The client address core.network decided on (behind a trusted proxy: the client's)."""
    return request.META.get("REMOTE_ADDR", "")


def locked_out_response(request, original_response=None, credentials=None):
    cool_off = get_cool_off(request)
    retry_at = timezone.localtime(timezone.now() + cool_off) if cool_off else None
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    return render(
        request,
        "accounts/locked_out.html",
        {"retry_at": retry_at, "minutes": minutes},
        status=429,
    )
