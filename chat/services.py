"""The only code that changes chat data. Each function is atomic and writes its audit event
in the same transaction."""

import datetime
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.log import record
from chat.inference import registry
from chat.models import Conversation, Message, ModelAccess
from core.labels import one_line_label

TITLE_MAX = 80
# The title of a conversation whose first message has no visible character.
UNTITLED = "Untitled conversation"
MODEL_NAME_MAX = 200


class ConversationNotFound(Exception):
    """The conversation does not exist or belongs to someone else (same answer for both)."""


# --- Models ---------------------------------------------------------------------------------


def served_models() -> list[str]:
    """Names of the models some live worker serves or is loading, sorted."""
    return sorted(
        {
            worker["model"]
            for worker in registry.live_workers()
            if worker.get("model") and worker.get("state") in {"ready", "loading"}
        }
    )


def may_use_model(user, name: str) -> bool:
    """Whether ``user`` may chat with the model ``name``: every active user may, unless an
    admin restricted it to groups (``ModelAccess``) and they are in none of them."""
    if not (user and user.is_active and name):
        return False
    access = ModelAccess.objects.filter(model_name=name).first()
    if access is None:
        return True
    groups = list(access.groups.values_list("pk", flat=True))
    return not groups or user.groups.filter(pk__in=groups).exists()


def models_for(user) -> list[str]:
    """The model names ``user`` may use, served now or configured as the site's default,
    sorted with the default first."""
    names = {settings.LLM_DEFAULT_MODEL, *served_models()}
    allowed = [name for name in names if may_use_model(user, name)]
    return sorted(allowed, key=lambda name: (name != settings.LLM_DEFAULT_MODEL, name))


def default_model_for(user) -> str:
    """The model a new conversation of ``user`` gets: the site's default where they may use
    it and it is served (or nothing is), else the first served model they may use."""
    allowed = models_for(user)
    served = set(served_models())
    running = [name for name in allowed if name in served]
    if running and allowed[0] not in served:
        return running[0]
    return allowed[0] if allowed else ""


class ModelNotAllowed(Exception):
    """The user may not use that model (an admin restricted it to other groups)."""


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


def generations_running(user) -> int:
    return Message.objects.filter(conversation__user=user, status=Message.Status.STREAMING).count()


@dataclass(frozen=True)
class Turn:
    conversation: Conversation
    question: Message
    answer: Message
    history: list[dict]
    new_conversation: bool


class GenerationInProgress(Exception):
    """The conversation already has an answer being written."""


def model_of(user, conversation_id, chosen: str | None) -> str:
    """The model a turn goes to: ``chosen`` (a picker's choice) when given, else the model
    the conversation remembers, else the user's default. Raises ModelNotAllowed for a model
    the user may not use, and ConversationNotFound for someone else's conversation."""
    if chosen:
        name = chosen
    elif conversation_id is not None:
        name = conversation_of(user, conversation_id).model_name or default_model_for(user)
    else:
        name = default_model_for(user)
    if not may_use_model(user, name):
        raise ModelNotAllowed(name)
    return name


@transaction.atomic
def start_turn(*, actor, conversation_id, content: str, model_name: str, scope=None) -> Turn:
    """Store the user's message and an empty answer to be streamed into; returns what the
    model needs to answer. The conversation remembers ``model_name`` as its model."""
    model_name = model_name[:MODEL_NAME_MAX]
    new = conversation_id is None
    if new:
        conversation = Conversation.objects.create(
            user=actor, title=title_from(content), model_name=model_name
        )
        record(
            "conversation.created", actor=actor, scope=scope, target=conversation, model=model_name
        )
    else:
        conversation = conversation_of(actor, conversation_id)
        Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
        if conversation.messages.filter(status=Message.Status.STREAMING).exists():
            raise GenerationInProgress
        if conversation.model_name != model_name:
            conversation.model_name = model_name
            Conversation.objects.filter(pk=conversation.pk).update(model_name=model_name)
    question = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=content
    )
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model_name,
    )
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    record(
        "message.sent",
        actor=actor,
        scope=scope,
        target=conversation,
        content_length=len(content),
        message_id=str(question.pk),
        model=model_name,
    )
    return Turn(conversation, question, answer, history(conversation), new)


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
        model=answer.model_name,
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


@transaction.atomic
def delete(*, actor, conversation: Conversation, request=None) -> None:
    messages = conversation.messages.count()
    record(
        "conversation.deleted",
        actor=actor,
        request=request,
        target=conversation,
        message_count=messages,
    )
    conversation.delete()


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
    messages = list(conversation.messages.order_by("created_at"))
    record(
        "conversation.exported",
        actor=actor,
        request=request,
        target=conversation,
        format=export_format,
        message_count=len(messages),
    )
    return content_type, render(conversation, messages)
