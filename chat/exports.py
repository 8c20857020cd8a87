"""A conversation as it leaves the database: messages as the page's JSON API gives them, and
the Markdown and JSON exports (every version, sources, the API origin), each recorded."""

import json

from django.db import transaction

from audit.log import record
from chat.models import Conversation, Message, origin_as_dict
from chat.services import Versions, citations_of, thread


def origin_line(conversation: Conversation) -> str:
    """A sentence saying that an API call started the conversation, with its token; empty for
    the page's conversations."""
    if conversation.origin != Conversation.Origin.API:
        return ""
    return (
        f"Started by an API call with the token “{conversation.api_token_name}” "
        f"({conversation.api_token_prefix}…)."
    )


def _as_markdown(conversation: Conversation, messages) -> str:
    versions = Versions.of(conversation)
    shown = thread(conversation, versions)
    shown_ids = {m.pk for m in shown}
    lines = [f"# {conversation.title}", ""]
    if origin := origin_line(conversation):
        lines += [f"_{origin}_", ""]
    for message in shown:
        lines += _markdown_message(message, versions)
    earlier = [m for m in messages if m.pk not in shown_ids]
    if earlier:
        lines += ["---", "", "# Earlier versions", ""]
        for message in earlier:
            lines += _markdown_message(message, versions)
    return "\n".join(lines)


def _markdown_message(message: Message, versions: Versions) -> list[str]:
    who = "You" if message.role == Message.Role.USER else f"Assistant ({message.model_name})"
    stamp = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
    note = "" if message.status == Message.Status.COMPLETE else f" — {message.get_status_display()}"
    siblings = versions.siblings(message.pk)
    if len(siblings) > 1:
        note += f" (version {siblings.index(message.pk) + 1} of {len(siblings)})"
    lines = [f"## {who}, {stamp}{note}", "", message.content, ""]
    citations = citations_of(message)
    for number, citation in enumerate(citations, start=1):
        page = f", page {citation['page']}" if citation.get("page") else ""
        quote = " ".join(citation["quote"].split())
        lines.append(f"> [{number}] {citation['name']}{page}: {quote}")
    if citations:
        lines.append("")
    return lines


def message_as_dict(message: Message) -> dict:
    """A message as the chat API and the JSON export show it."""
    return {
        "id": str(message.pk),
        "parent": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model_name,
        "created_at": message.created_at.isoformat(),
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "citations": citations_of(message),
        "time_to_first_token_ms": message.time_to_first_token_ms,
        "duration_ms": message.duration_ms,
    }


def thread_as_dicts(conversation: Conversation) -> list[dict]:
    """The thread shown, each message with the ids of its versions (itself included)."""
    versions = Versions.of(conversation)
    return [
        {**message_as_dict(m), "versions": [str(pk) for pk in versions.siblings(m.pk)]}
        for m in thread(conversation, versions)
    ]


def _as_json(conversation: Conversation, messages) -> str:
    """Every message, earlier versions too: ``parent`` links each to the one it follows and
    ``thread`` lists the ids of the version shown."""
    return json.dumps(
        {
            "id": str(conversation.pk),
            "title": conversation.title,
            "created_at": conversation.created_at.isoformat(),
            **origin_as_dict(conversation),
            "thread": [str(m.pk) for m in thread(conversation)],
            "messages": [message_as_dict(m) for m in messages],
        },
        ensure_ascii=False,
        indent=2,
    )


EXPORT_FORMATS = {
    "md": ("text/markdown; charset=utf-8", _as_markdown),
    "json": ("application/json; charset=utf-8", _as_json),
}


@transaction.atomic
def export(*, actor, conversation: Conversation, export_format: str, request=None):
    """(content type, body) of the conversation as Markdown or JSON; recorded."""
    content_type, render = EXPORT_FORMATS[export_format]
    messages = list(conversation.messages.select_related("sources").order_by("created_at"))
    record(
        "conversation.exported",
        actor=actor,
        request=request,
        target=conversation,
        format=export_format,
        message_count=len(messages),
    )
    return content_type, render(conversation, messages)
