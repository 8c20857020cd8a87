from django import forms


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
