from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Tokens end with the account or second factor they stood on.
        from accounts.roles import ADMINS, add_role_permissions
        from api import receivers  # noqa: F401
        from api.limits import api_generations_running
        from chat.services import UNSTORED_GENERATION_COUNTERS

        # The chat socket's limit of answers at once counts API calls too.
        if api_generations_running not in UNSTORED_GENERATION_COUNTERS:
            UNSTORED_GENERATION_COUNTERS.append(api_generations_running)
        # Admins list everyone's tokens, revoke them (a change) and see the usage.
        add_role_permissions(
            ADMINS,
            [("api", "view_apitoken"), ("api", "change_apitoken"), ("api", "view_apiusage")],
        )
