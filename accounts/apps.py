from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Two-factor login, enrolment, backup codes, lockout and user administration."""

    name = "accounts"
