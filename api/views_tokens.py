"""The token page: a person's tokens, a new one (confirmed with a fresh authenticator code,
or a passkey assertion made for this one token), revoking."""

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import passkeys
from accounts.services import check_code, confirmed_totp_device, has_passkeys
from api import services
from api.forms import NewTokenForm

# What a passkey assertion for a new token is for (its challenge serves nothing else).
PASSKEY_PURPOSE = "api_token"


def _page(request, form, status=200):
    return render(
        request,
        "api/tokens.html",
        {
            "tokens": request.user.api_tokens.all(),
            "form": form,
            "has_totp": confirmed_totp_device(request.user) is not None,
            "has_passkeys": has_passkeys(request.user),
        },
        status=status,
    )


def _confirm_with_code(request, form):
    """The form's code checked against the authenticator app; an error on the form if not."""
    device = confirmed_totp_device(request.user)
    if device is None:
        form.add_error(None, "Set up an authenticator app first; a token needs one behind it.")
        return False
    if not form.is_valid():
        return False
    result = check_code(request, device, form.cleaned_data["code"], kind="totp")
    if not result.ok:
        form.add_error("code", result.message)
    return result.ok


def _confirm_with_passkey(request, form, assertion: str):
    """The assertion made for this token checked (and its challenge spent, whatever
    happens); an error on the form if not."""
    form.fields["code"].required = False
    if not form.is_valid():
        passkeys.discard_action_assertion(request)
        form.add_error(None, "Correct the form, then use your passkey again.")
        return False
    try:
        passkeys.check_action_assertion(request, purpose=PASSKEY_PURPOSE, assertion=assertion)
    except passkeys.PasskeyRefused as refused:
        form.add_error(None, str(refused))
        return False
    return True


@never_cache
@sensitive_post_parameters("code", "passkey")
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = NewTokenForm(request.POST or None)
    if request.method == "GET":
        return _page(request, form)
    assertion = request.POST.get("passkey", "")
    if assertion:
        confirmed, confirmed_with = _confirm_with_passkey(request, form, assertion), "passkey"
    else:
        confirmed, confirmed_with = _confirm_with_code(request, form), "totp"
    if not confirmed:
        return _page(request, form, 400)
    try:
        token, text = services.create_api_token(
            actor=request.user,
            user=request.user,
            name=form.cleaned_data["name"],
            days=form.cleaned_data["days"],
            scopes=form.cleaned_data["scopes"],
            request=request,
            confirmed_with=confirmed_with,
        )
    except services.TokenError as error:
        form.add_error(None, str(error))
        return _page(request, form, 400)
    response = render(request, "api/token_created.html", {"token": token, "text": text})
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_POST
def passkey_challenge(request):
    """The options of a passkey assertion that confirms the next new token (and only it)."""
    if not has_passkeys(request.user):
        return JsonResponse(
            {"detail": "You have no passkey here; use your authenticator app's code."},
            status=400,
        )
    return JsonResponse(passkeys.begin_action_assertion(request, purpose=PASSKEY_PURPOSE))


@never_cache
@require_POST
def revoke(request, token_id):
    token = services.live_tokens_of(request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    services.revoke_api_token(actor=request.user, token=token, request=request)
    messages.success(request, f"The token {token.name!r} was revoked; it no longer works.")
    return redirect("api:tokens")
