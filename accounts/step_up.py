"""Step-up: an action that needs a second factor used within the last STEP_UP_SECONDS.

Decorate the view of the action (its GET shows the action's form, its POST does it)::

    from accounts.step_up import step_up_required

    @step_up_required
    def create_token(request): ...

    @method_decorator(step_up_required, name="dispatch")
    class SomeView(View): ...

When the session's second factor is older than that, the view does not run: the same URL
answers with the step-up prompt instead (an authenticator code, a backup code, or a
passkey), which posts to ``accounts:step_up`` and, once it is right, returns to the action's
URL with a GET. A POST that arrives stale is not carried out (its form is shown again after
the prompt), so nothing a person typed, such as a password, is kept anywhere meanwhile.
"""

from functools import wraps

from django.conf import settings
from django.shortcuts import render

from accounts import services
from accounts.forms import CodeForm
from accounts.passkeys import browser_configuration


def step_up_prompt(request, *, next_url: str, form=None, status: int | None = None):
    """The step-up page, returning to ``next_url`` once a second factor is proved."""
    if status is None:
        status = 200 if request.method in ("GET", "HEAD") else 403
    return render(
        request,
        "accounts/step_up.html",
        {
            "form": form or CodeForm(),
            "next": next_url,
            "step_up_minutes": max(1, settings.STEP_UP_SECONDS // 60),
            "passkey_config": (
                browser_configuration(request) if services.has_passkeys(request.user) else None
            ),
        },
        status=status,
    )


def step_up_required(view):
    """Run ``view`` only for a session whose second factor is fresh; otherwise answer with
    the step-up prompt in its place."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if services.second_factor_is_fresh(request):
            return view(request, *args, **kwargs)
        return step_up_prompt(request, next_url=request.path)

    return guarded
