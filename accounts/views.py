"""Sign-in in two steps, enrolment, backup codes, the account page and its data download."""

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import account_page, services, your_data
from accounts.forms import CodeForm, SignInForm
from accounts.passkeys import PENDING_NAME_KEY, browser_configuration
from accounts.step_up import step_up_prompt, step_up_required
from accounts.user_agent import browser_and_system


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=True
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


def _with_next(path: str, request) -> str:
    target = _next_url(request)
    return path if target == settings.LOGIN_REDIRECT_URL else f"{path}?next={target}"


class SignInView(auth_views.LoginView):
    """Step one: username and password (django-axes counts the failures)."""

    template_name = "accounts/login.html"
    authentication_form = SignInForm

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["oidc_provider_name"] = getattr(settings, "OIDC_PROVIDER_NAME", "")
        return context

    def get_success_url(self):
        user = self.request.user
        step = "accounts:verify" if services.confirmed_totp_device(user) else "accounts:enrol"
        return _with_next(reverse(step), self.request)


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def verify(request):
    """Step two: a code from the authenticator app, or a backup code."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    if services.confirmed_totp_device(request.user) is None:
        return redirect(_with_next(reverse("accounts:enrol"), request))
    form = CodeForm(request.POST or None)
    wait_seconds = 0
    if request.method == "POST" and form.is_valid():
        result = services.verify_second_factor(request, form.cleaned_data["code"])
        if result.ok:
            return redirect(_next_url(request))
        form.add_error("code", result.message)
        wait_seconds = result.wait_seconds
    return render(
        request,
        "accounts/verify.html",
        {
            "form": form,
            "next": _next_url(request),
            "wait_seconds": wait_seconds,
            "passkey_config": _passkey_configuration(request),
        },
        status=200 if not form.errors else 400,
    )


def _passkey_configuration(request) -> dict | None:
    """The passkey script's settings when the user has a passkey to verify with."""
    return browser_configuration(request) if services.has_passkeys(request.user) else None


def _qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(
        scale=5, dark="#000", light="#fff", border=2, omitsize=True
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def enrol(request):
    """Set up an authenticator app: scan the QR code (or type the key), confirm one code."""
    if services.confirmed_totp_device(request.user) is not None:
        if request.user.is_verified():
            return redirect("accounts:account")
        return redirect(_with_next(reverse("accounts:verify"), request))
    if not services.sign_in_is_recent(request):
        # A new authenticator needs the password just now, not a session left open.
        logout(request)
        messages.info(request, "Sign in again with your password to set up two-step verification.")
        return redirect(_with_next(reverse("accounts:login"), request))
    device = services.start_enrolment(request.user)
    form = CodeForm(request.POST or None, numeric=True)
    if request.method == "POST" and form.is_valid():
        result = services.check_code(request, device, form.cleaned_data["code"], kind="enrol")
        if result.ok:
            codes = services.confirm_enrolment(actor=request.user, device=device)
            services.mark_verified(request, device)
            return _show_backup_codes(request, codes, first_time=True)
        hint = (
            " Check that your phone sets its clock automatically."
            if not result.wait_seconds
            else ""
        )
        form.add_error("code", result.message + hint)
    key = device.base32_key
    context = {
        "form": form,
        "qr_svg": _qr_svg(device.config_url(settings.SITE_NAME)),
        "key_groups": [key[i : i + 4] for i in range(0, len(key), 4)],
        "next": _next_url(request),
    }
    return render(request, "accounts/enrol.html", context, status=400 if form.errors else 200)


def _show_backup_codes(request, codes, *, first_time: bool):
    response = render(
        request,
        "accounts/backup_codes.html",
        {"codes": codes, "first_time": first_time, "next": _next_url(request)},
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET"])
def account(request):
    device = services.confirmed_totp_device(request.user)
    backup = services.backup_device(request.user)
    return render(
        request,
        "accounts/account.html",
        {
            "device": device,
            "codes_left": backup.codes_left() if backup else 0,
            "sections": account_page.sections(request),
        },
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["POST"])
def step_up(request):
    """The step-up prompt's form (accounts.step_up): a right code returns to the action."""
    target = _next_url(request)
    form = CodeForm(request.POST)
    if form.is_valid():
        result = services.verify_second_factor(request, form.cleaned_data["code"], step_up=True)
        if result.ok:
            return redirect(target)
        form.add_error("code", result.message)
    return step_up_prompt(request, next_url=target, form=form, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
@step_up_required
def regenerate_backup_codes(request):
    """New backup codes replace the old ones (GET asks, POST makes them)."""
    if request.method == "POST":
        codes = services.regenerate_backup_codes(actor=request.user)
        return _show_backup_codes(request, codes, first_time=False)
    backup = services.backup_device(request.user)
    return render(
        request,
        "accounts/new_backup_codes.html",
        {"codes_left": backup.codes_left() if backup else 0},
    )


@never_cache
@require_http_methods(["GET"])
def sessions(request):
    """Where the user is signed in: browser and system, address, sign-in time and last
    activity of each session, this one marked."""
    current = services.current_session_hash(request)
    rows = [
        {
            "id": session.pk,
            "browser": browser_and_system(session.user_agent),
            "ip_address": session.ip_address,
            "started_at": session.started_at,
            "last_seen_at": session.last_seen_at,
            "current": session.key_hash == current,
        }
        for session in services.sessions_of(request.user)
    ]
    rows.sort(key=lambda row: not row["current"])
    return render(request, "accounts/sessions.html", {"sessions": rows})


@never_cache
@require_http_methods(["POST"])
def end_session(request, session_id: int):
    """Sign out one of the user's other sessions (this one signs out with Sign out)."""
    if services.is_current_session(request, session_id):
        messages.error(request, "That is this session. Use Sign out to end it.")
    elif services.end_session(actor=request.user, user=request.user, session_id=session_id):
        messages.success(request, "That session was signed out.")
    else:
        messages.info(request, "That session had already ended.")
    return redirect("accounts:sessions")


@never_cache
@require_http_methods(["POST"])
def download_your_data(request):
    """Everything the user stored, as one zip (recorded)."""
    archive = your_data.export_user_data(actor=request.user, user=request.user, request=request)
    return your_data.as_download(archive, request.user)


@never_cache
@require_http_methods(["POST"])
def end_other_sessions(request):
    ended = services.end_other_sessions(actor=request.user, request=request)
    if ended:
        plural = "session was" if ended == 1 else "sessions were"
        messages.success(request, f"{ended} other {plural} signed out.")
    else:
        messages.info(request, "You were not signed in anywhere else.")
    return redirect("accounts:sessions")


@never_cache
@require_http_methods(["GET"])
def passkeys(request):
    """The user's passkeys: each one's name, when it was added and last used; add, remove."""
    return render(
        request,
        "accounts/passkeys.html",
        {
            "passkeys": services.passkeys_of(request.user),
            "rp_id": settings.PASSKEY_RP_ID,
            "name_max": services.PASSKEY_NAME_MAX,
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@step_up_required
def add_passkey(request):
    """Name a new passkey (POST), then register it in the browser: the library's script
    runs the ceremony against accounts.passkeys' views, which need this fresh second factor
    and the name kept in the session."""
    error = ""
    name = request.POST.get("name", "")
    if request.method == "POST":
        try:
            request.session[PENDING_NAME_KEY] = services.clean_passkey_name(name)
        except ValueError as problem:
            error = str(problem)
        else:
            return render(
                request,
                "accounts/passkey_register.html",
                {
                    "name": request.session[PENDING_NAME_KEY],
                    "passkey_config": browser_configuration(request),
                },
            )
    return render(
        request,
        "accounts/passkey_name.html",
        {"name": name, "error": error, "name_max": services.PASSKEY_NAME_MAX},
        status=400 if error else 200,
    )


@never_cache
@require_http_methods(["POST"])
def remove_passkey(request, passkey_id: int):
    refusal = services.remove_passkey(actor=request.user, passkey_id=passkey_id)
    if refusal:
        messages.error(request, refusal)
    else:
        messages.success(request, "The passkey was removed. It no longer signs you in here.")
    return redirect("accounts:passkeys")


@method_decorator(step_up_required, name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:account")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(actor=self.request.user, request=self.request)
        messages.success(
            self.request, "Your password was changed. Your other sessions have been signed out."
        )
        return response


sign_out = auth_views.LogoutView.as_view()
sign_in = method_decorator(never_cache, name="dispatch")(SignInView).as_view()
