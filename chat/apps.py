from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations with the language model, and the inference worker."""

    name = "chat"
