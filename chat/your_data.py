"""The chat's section of a user's data archive (core.personal_data): each conversation as
JSON and as Markdown, as the conversation export writes them."""

from chat.exports import EXPORT_FORMATS
from chat.models import Conversation
from core import personal_data


def conversations_section(user) -> personal_data.SectionData:
    files = {}
    conversations = Conversation.objects.filter(user=user).order_by("created_at")
    count = 0
    for conversation in conversations.iterator():
        messages = list(conversation.messages.order_by("created_at"))
        stem = f"{conversation.created_at:%Y-%m-%d}-{conversation.pk}"
        for extension, (_content_type, render) in EXPORT_FORMATS.items():
            files[f"{stem}.{extension}"] = render(conversation, messages)
        count += 1
    return personal_data.SectionData(files, count)
