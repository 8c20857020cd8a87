from django import forms
from django.conf import settings

from accounts.forms import CodeForm
from api.models import SCOPES

SCOPE_HELP = {
    "models": "List the models you may use",
    "chat": "Ask the model (chat completions)",
    "embeddings": "Turn text into embeddings",
}


class NewTokenForm(CodeForm):
    """A new token's name, lifetime and scopes, confirmed with a current authenticator code
    (even in a verified session: a stolen session alone cannot mint a lasting token)."""

    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text="What it is for, e.g. 'notebook' or 'IDE on my laptop'.",
        error_messages={"required": "Give the token a name, so you can tell it apart later."},
    )
    scopes = forms.MultipleChoiceField(
        label="It may",
        choices=[(scope, SCOPE_HELP[scope]) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one thing the token may do."},
    )
    field_order = ["name", "days", "scopes", "code"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, numeric=True, **kwargs)
        maximum = settings.API_TOKEN_MAX_DAYS
        self.fields["days"] = forms.IntegerField(
            label="Lasts (days)",
            min_value=1,
            max_value=maximum,
            initial=min(settings.API_TOKEN_DEFAULT_DAYS, maximum),
            help_text=f"At most {maximum} days.",
            error_messages={
                "required": "Say how many days the token should last.",
                "invalid": "Type a whole number of days.",
                "min_value": "A token must last at least 1 day.",
                "max_value": f"A token may last at most {maximum} days on this site.",
            },
        )
        self.order_fields(self.field_order)
        self.fields["scopes"].initial = list(SCOPES)
        self.fields["code"].widget.attrs.pop("autofocus", None)
        self.fields["name"].widget.attrs["autofocus"] = True
