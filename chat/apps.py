from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations with the language model, and the inference worker."""

    name = "chat"

    def ready(self):
        from django.db.models.signals import post_delete

        from accounts.account_page import register_section
        from accounts.signals import user_erasing

        # Registers the worker-count collector with the metrics every process serves.
        from chat.inference import metrics  # noqa: F401
        from chat.models import Conversation
        from chat.services import (
            destroy_conversation_key,
            erase_conversations_of,
            erased_conversation_counts,
            forget_erased_conversation,
        )
        from chat.supervision_views import account_section
        from chat.your_data import conversations_section
        from core import datakeys, personal_data

        register_section(account_section)
        user_erasing.connect(erase_conversations_of, dispatch_uid="chat.erase_conversations_of")
        post_delete.connect(
            destroy_conversation_key, sender=Conversation, dispatch_uid="chat.destroy_key"
        )
        datakeys.register_scope_eraser(datakeys.CONVERSATION_SCOPE, forget_erased_conversation)
        datakeys.register_erased_counter(erased_conversation_counts)
        personal_data.register(
            "conversations",
            "every conversation, as JSON and as Markdown",
            conversations_section,
        )
