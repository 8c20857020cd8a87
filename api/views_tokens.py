"""The token page: a person's tokens, a new one (with a fresh authenticator code), revoking."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.services import check_code, confirmed_totp_device
from api import services
from api.forms import NewTokenForm


def _page(request, form, status=200):
    return render(
        request,
        "api/tokens.html",
        {"tokens": request.user.api_tokens.all(), "form": form},
        status=status,
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = NewTokenForm(request.POST or None)
    if request.method == "GET":
        return _page(request, form)
    device = confirmed_totp_device(request.user)
    if device is None:
        form.add_error(None, "Set up an authenticator app first; a token needs one behind it.")
        return _page(request, form, 400)
    if not form.is_valid():
        return _page(request, form, 400)
    result = check_code(request, device, form.cleaned_data["code"], kind="totp")
    if not result.ok:
        form.add_error("code", result.message)
        return _page(request, form, 400)
    try:
        token, text = services.create_api_token(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            days=form.cleaned_data["days"],
            scopes=form.cleaned_data["scopes"],
            request=request,
        )
    except services.TokenError as error:
        form.add_error(None, str(error))
        return _page(request, form, 400)
    response = render(request, "api/token_created.html", {"token": token, "text": text})
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_POST
def revoke(request, token_id):
    token = services.live_tokens_of(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    services.revoke_api_token(actor=request.user, token=token, request=request)
    messages.success(request, f"The token {token.name!r} was revoked; it no longer works.")
    return redirect("api:tokens")
