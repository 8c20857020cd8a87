from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import directory

# What a person is told when the company directory refused them for a reason of its own
# (accounts.directory); a wrong password keeps Django's message, which names neither part.
DIRECTORY_MESSAGES = {
    directory.UNAVAILABLE: (
        "The company directory cannot be reached just now, so company accounts cannot sign "
        "in. Try again in a few minutes; if it lasts, tell the IT service desk."
    ),
    directory.NO_ROLE: (
        "Your company account is not in a group that may use this chat. Ask the IT service "
        "desk to add you to the chat's group."
    ),
}


class SignInForm(AuthenticationForm):
    """Django's sign-in form, with sentences for the directory's refusals and for accounts
    that were switched off."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "inactive": (
            "This account is switched off. If you still work here, ask the IT service desk "
            "to switch it on again."
        ),
    }

    def get_invalid_login_error(self):
        failure = getattr(self.request, "sign_in_failure", None) or {}
        message = DIRECTORY_MESSAGES.get(failure.get("reason"))
        if message is not None:
            return ValidationError(message, code=failure["reason"])
        return super().get_invalid_login_error()


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "off",
                "spellcheck": "false",
                "autofocus": True,
                "class": "code-input",
            }
        ),
        error_messages={"required": "Type the code first."},
    )

    def __init__(self, *args, numeric: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if numeric:
            self.fields["code"].widget.attrs.update(inputmode="numeric", pattern=r"[0-9 ]*")
            self.fields["code"].help_text = "The 6-digit code your authenticator app shows now."
        else:
            self.fields[
                "code"
            ].help_text = (
                "The 6-digit code from your authenticator app, or one of your backup codes."
            )


class ResetTwoFactorForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit log, e.g. 'lost phone, identity checked by phone call'.",
    )


class EraseUserForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit log, e.g. 'erasure request 2026-118 from the employee'.",
    )
    confirm_final = forms.BooleanField(
        label="I understand that this cannot be undone, not even from a backup.",
        error_messages={"required": "Tick the box to confirm that the erasure is final."},
    )


class DataRequestForm(forms.Form):
    reason = forms.CharField(
        label="Request",
        max_length=500,
        help_text="Whose request this answers, recorded in the audit log, e.g. 'ticket 4411, "
        "asked by the employee on 2026-11-28'.",
    )
