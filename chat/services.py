"""The only code that changes chat data. Each function is atomic and writes its audit event
in the same transaction."""

import datetime
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.erasure import ErasureRefused, refuse_if_held
from audit.log import record
from chat import retrieval
from chat.models import AnswerSources, Conversation, Message
from core import datakeys
from core.labels import one_line_label

TITLE_MAX = 80
# The title of a conversation whose first message has no visible character.
UNTITLED = "Untitled conversation"
MODEL_NAME_MAX = 200


class ConversationNotFound(Exception):
    """The conversation does not exist or belongs to someone else (same answer for both)."""


def conversations_of(user):
    return Conversation.objects.filter(user=user).order_by("-updated_at")


def conversation_of(user, conversation_id) -> Conversation:
    try:
        return Conversation.objects.get(pk=conversation_id, user=user)
    except (Conversation.DoesNotExist, ValueError, TypeError):
        raise ConversationNotFound from None


def title_from(content: str) -> str:
    """A new conversation's title: the first words of its first message, on one line and
    without control or bidirectional-override characters."""
    line = one_line_label(content) or UNTITLED
    return line if len(line) <= TITLE_MAX else line[: TITLE_MAX - 1].rstrip() + "…"


def history(conversation: Conversation, *, before: Message | None = None) -> list[dict]:
    """The conversation so far, oldest first, as the engine takes it; empty answers skipped."""
    messages = conversation.messages.exclude(status=Message.Status.STREAMING)
    if before is not None:
        messages = messages.filter(created_at__lt=before.created_at)
    return [
        {"role": message.role, "content": message.content}
        for message in messages.order_by("created_at")
        if message.content
    ]


@transaction.atomic
def fail_stale_answers(*, actor, request=None, scope=None) -> int:
    """Answers of ``actor`` still 'being written' long after any worker could be writing them
    (a worker and the browser both went away) become errors, keeping what was written; each
    is recorded as generation.failed with the reason "stalled". Returns how many."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=2 * settings.CHAT_STALL_TIMEOUT)
    stale = Message.objects.filter(
        conversation__user=actor, status=Message.Status.STREAMING, created_at__lt=cutoff
    ).select_related("conversation")
    ended = 0
    for answer in stale:
        # Only if still streaming: a worker may store it in the meantime (finish_answer).
        if not Message.objects.filter(pk=answer.pk, status=Message.Status.STREAMING).update(
            status=Message.Status.ERROR, finished_at=now
        ):
            continue
        ended += 1
        record(
            "generation.failed",
            actor=actor,
            outcome="failure",
            request=request,
            scope=scope,
            target=answer.conversation,
            message_id=str(answer.pk),
            finish_reason="error",
            reason="stalled",
            content_length=len(answer.content),
        )
    return ended


# Answers being written that are not stored messages (API calls the site does not keep):
# other apps register a function of the user here, so one limit covers every way in.
UNSTORED_GENERATION_COUNTERS: list = []


def generations_running(user) -> int:
    stored = Message.objects.filter(
        conversation__user=user, status=Message.Status.STREAMING
    ).count()
    return stored + sum(count(user) for count in UNSTORED_GENERATION_COUNTERS)


@dataclass(frozen=True)
class Turn:
    conversation: Conversation
    question: Message
    answer: Message
    history: list[dict]
    new_conversation: bool


class GenerationInProgress(Exception):
    """The conversation already has an answer being written."""


@transaction.atomic
def start_turn(
    *,
    actor,
    conversation_id,
    content: str,
    model_name: str,
    scope=None,
    citations: list[dict] | None = None,
) -> Turn:
    """Store the user's message and an empty answer to be streamed into; returns what the
    model needs to answer. ``citations`` (chat.retrieval) are stored with the answer and put
    before the question, quoted, in what the model reads."""
    new = conversation_id is None
    if new:
        conversation = Conversation.objects.create(user=actor, title=title_from(content))
        record("conversation.created", actor=actor, scope=scope, target=conversation)
    else:
        conversation = conversation_of(actor, conversation_id)
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        if conversation.messages.filter(status=Message.Status.STREAMING).exists():
            raise GenerationInProgress
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content
    )
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model_name[:MODEL_NAME_MAX],
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    record(
        "message.sent",
        actor=actor,
        scope=scope,
        target=conversation,
        content_length=len(content),
        message_id=str(question.pk),
    )
    turns = history(conversation)
    if citations:
        AnswerSources.objects.create(answer=answer, citations=json.dumps(citations))
        record(
            "retrieval",
            actor=actor,
            scope=scope,
            target=conversation,
            message_id=str(answer.pk),
            document_ids=sorted({c["document"] for c in citations}),
            passage_count=len(citations),
        )
        turns[-1] = {"role": "user", "content": retrieval.with_excerpts(content, citations)}
    return Turn(conversation, question, answer, turns, new)


def citations_of(message: Message) -> list[dict]:
    try:
        return json.loads(message.sources.citations)
    except AnswerSources.DoesNotExist:
        return []


FINISH_STATUS = {
    "stop": Message.Status.COMPLETE,
    "length": Message.Status.COMPLETE,
    "cancelled": Message.Status.CANCELLED,
    "error": Message.Status.ERROR,
}
FINISH_ACTION = {
    Message.Status.COMPLETE: "generation.done",
    Message.Status.CANCELLED: "generation.cancelled",
    Message.Status.ERROR: "generation.failed",
}


@transaction.atomic
def finish_answer(
    *,
    message_id,
    content: str,
    finish_reason: str,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    time_to_first_token_ms: int | None = None,
    duration_ms: int | None = None,
    model_name: str | None = None,
) -> bool:
    """Store a finished answer, once: the first of the worker and the consumer to finish it
    wins (a worker finishing normally, or a consumer giving up on a stalled one)."""
    status = FINISH_STATUS.get(finish_reason, Message.Status.ERROR)
    answer = (
        Message.objects.select_for_update()
        .select_related("conversation__user")
        .filter(pk=message_id, status=Message.Status.STREAMING)
        .first()
    )
    if answer is None:
        return False
    answer.content = content
    answer.status = status
    answer.prompt_tokens = prompt_tokens
    answer.completion_tokens = completion_tokens
    answer.time_to_first_token_ms = time_to_first_token_ms
    answer.duration_ms = duration_ms
    answer.finished_at = timezone.now()
    if model_name:
        answer.model_name = model_name[:MODEL_NAME_MAX]
    answer.save()
    Conversation.objects.filter(pk=answer.conversation_id).update(updated_at=answer.finished_at)
    record(
        FINISH_ACTION[status],
        actor=answer.conversation.user,
        outcome="failure" if status == Message.Status.ERROR else "success",
        target=answer.conversation,
        message_id=str(answer.pk),
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        time_to_first_token_ms=time_to_first_token_ms,
        duration_ms=duration_ms,
        content_length=len(content),
    )
    return True


@transaction.atomic
def rename(*, actor, conversation: Conversation, title: str, request=None) -> Conversation:
    """Give the conversation ``title``, on one line and without control or bidirectional-
    override characters; ValueError when nothing is left of it."""
    title = one_line_label(title)[:TITLE_MAX].rstrip()
    if not title:
        raise ValueError("A title cannot be empty.")
    conversation.title = title
    conversation.save(update_fields=["title"])
    record("conversation.renamed", actor=actor, request=request, target=conversation)
    return conversation


class ConversationHeld(Exception):
    """The conversation's owner is under a legal hold: nothing of theirs is erased now."""


HELD = (
    "This conversation cannot be deleted now: your organisation must keep your conversations "
    "for a legal matter (a legal hold). Ask Compliance if you have questions."
)


@transaction.atomic
def delete(*, actor, conversation: Conversation, request=None) -> None:
    """Erase a conversation: its rows, and its data key, so that no backup can bring it back.
    ConversationHeld when its owner is under a legal hold."""
    try:
        refuse_if_held(conversation.user, "This conversation")
    except ErasureRefused:
        raise ConversationHeld(HELD) from None
    messages = conversation.messages.count()
    record(
        "conversation.deleted",
        actor=actor,
        request=request,
        target=conversation,
        message_count=messages,
    )
    conversation.delete()  # and its data key, with it (destroy_conversation_key)


def destroy_conversation_key(sender, instance, **kwargs) -> None:
    """``post_delete`` of a conversation, however it goes (deleted, erased, retention, its
    user deleted): its data key goes with it, in the same transaction."""
    datakeys.destroy(datakeys.conversation_key(instance.user_id, instance.pk))


@transaction.atomic
def forget_erased_conversation(user_id: int, conversation_id: str) -> int:
    """A conversation erased after the backup this database came from (its key is gone, it
    reads as erased): its rows go too. Registered with core.datakeys for
    ``manage.py reapply_erasures``; returns 1 when there was such a conversation."""
    conversation = Conversation.objects.filter(pk=conversation_id, user_id=user_id).first()
    if conversation is None or datakeys.exists(datakeys.conversation_key(user_id, conversation.pk)):
        return 0
    record(
        "conversation.deleted",
        actor=None,
        target=conversation,
        message_count=conversation.messages.count(),
        reapplied_after_restore=True,
    )
    conversation.delete()
    return 1


def erase_conversations_of(*, sender, user, actor, **kwargs) -> dict[str, int]:
    """``accounts.signals.user_erasing``: delete the user's conversations (their data keys go
    with the user's, destroyed by accounts.erasure)."""
    conversations = Conversation.objects.filter(user=user)
    counts = {
        "conversations": conversations.count(),
        "messages": Message.objects.filter(conversation__user=user).count(),
    }
    conversations.delete()
    return counts


def _as_markdown(conversation: Conversation, messages) -> str:
    lines = [f"# {conversation.title}", ""]
    for message in messages:
        who = "You" if message.role == Message.Role.USER else f"Assistant ({message.model_name})"
        stamp = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
        note = (
            ""
            if message.status == Message.Status.COMPLETE
            else f" — {message.get_status_display()}"
        )
        lines += [f"## {who}, {stamp}{note}", "", message.content, ""]
        citations = citations_of(message)
        for number, citation in enumerate(citations, start=1):
            page = f", page {citation['page']}" if citation.get("page") else ""
            quote = " ".join(citation["quote"].split())
            lines.append(f"> [{number}] {citation['name']}{page}: {quote}")
        if citations:
            lines.append("")
    return "\n".join(lines)


def message_as_dict(message: Message) -> dict:
    """A message as the chat API and the JSON export show it."""
    return {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model_name,
        "created_at": message.created_at.isoformat(),
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "citations": citations_of(message),
    }


def _as_json(conversation: Conversation, messages) -> str:
    return json.dumps(
        {
            "id": str(conversation.pk),
            "title": conversation.title,
            "created_at": conversation.created_at.isoformat(),
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
