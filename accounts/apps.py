from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Two-factor login, enrolment, backup codes, lockout and user administration."""

    name = "accounts"

    def ready(self):
        from accounts import receivers  # noqa: F401 (connects the signal receivers)
