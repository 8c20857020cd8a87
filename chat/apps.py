from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations with the language model, and the inference worker."""

    name = "chat"

    def ready(self):
        # Registers the worker-count collector with the metrics every process serves.
        from chat.inference import metrics  # noqa: F401
