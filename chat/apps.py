from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations with the language model, and the inference worker."""

    name = "chat"

    def ready(self):
        from accounts.account_page import register_section

        # Registers the worker-count collector with the metrics every process serves.
        from chat.inference import metrics  # noqa: F401
        from chat.supervision_views import account_section

        register_section(account_section)
