"""The only code that changes chat data: conversations and their list, turns, versions,
answers being written and their end, erasure. Each function is atomic and writes its audit
event in the same transaction. Which model a turn goes to is chat.model_choice; how a
conversation is shown and exported, chat.exports."""

import datetime
import json
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from accounts.erasure import ErasureRefused, refuse_if_held
from audit.log import record, record_together
from chat import retrieval
from chat.conversation_settings import ChatSettings, apply_settings, settings_params
from chat.models import AnswerSources, Conversation, Message, origin_as_dict
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


# One page of the conversation list: enough to fill a tall screen; the page asks for more as
# the list scrolls, so thousands of conversations cost one page of titles to decrypt.
PAGE_SIZE = 50
PAGE_SIZE_MAX = 500


@dataclass(frozen=True)
class ListPage:
    conversations: list
    # Where the next page starts ("<updated_at ISO>|<id>"), None at the end.
    next: str | None


class BadCursor(ValueError):
    """A page cursor the list did not hand out."""


def conversation_page(
    user, *, archived: bool = False, after: str | None = None, limit: int = PAGE_SIZE
) -> ListPage:
    """The user's conversations, newest first, ``limit`` at a time. The first page starts
    with every pinned one (archived ones are listed apart, by ``archived=True``); the next
    pages continue after the cursor ``after``."""
    chosen = Conversation.objects.filter(user=user, archived=archived).order_by(
        "-updated_at", "-id"
    )
    pinned = []
    if after is None:
        if not archived:
            pinned = list(chosen.filter(pinned=True))
    else:
        try:
            stamp, _, last = after.partition("|")
            stamp = datetime.datetime.fromisoformat(stamp)
            last = uuid.UUID(last)
        except ValueError:
            raise BadCursor("That list position is not one the list gave out.") from None
        chosen = chosen.filter(
            models.Q(updated_at__lt=stamp) | models.Q(updated_at=stamp, id__lt=last)
        )
    if not archived:
        chosen = chosen.filter(pinned=False)
    rows = list(chosen[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = f"{rows[-1].updated_at.isoformat()}|{rows[-1].pk}" if more and rows else None
    return ListPage(pinned + rows, cursor)


def conversation_as_item(conversation: Conversation) -> dict:
    """A conversation as the list shows it."""
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "updated_at": conversation.updated_at.isoformat(),
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        **origin_as_dict(conversation),
    }


LIST_ACTIONS = {
    ("pinned", True): "conversation.pinned",
    ("pinned", False): "conversation.unpinned",
    ("archived", True): "conversation.archived",
    ("archived", False): "conversation.unarchived",
}


@transaction.atomic
def set_flag(*, actor, conversation: Conversation, flag: str, value: bool, request=None):
    """Pin or unpin, archive or bring back a conversation (an archived one is not pinned)."""
    if (flag, value) not in LIST_ACTIONS:
        raise ValueError(f"{flag!r} cannot be set to {value!r}.")
    setattr(conversation, flag, value)
    changed = [flag]
    if flag == "archived" and value and conversation.pinned:
        conversation.pinned = False
        changed.append("pinned")
    conversation.save(update_fields=changed)
    record(LIST_ACTIONS[flag, value], actor=actor, request=request, target=conversation)
    return conversation


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


class MessageNotFound(Exception):
    """The message is not one of the conversation's, or not one that may be used so."""


@dataclass(frozen=True)
class Versions:
    """Which messages of a conversation follow which: ``children`` by parent id (None for
    the first questions), oldest first, and each message's parent."""

    children: dict
    parent: dict

    @classmethod
    def of(cls, conversation: Conversation) -> "Versions":
        children, parent = {}, {}
        rows = conversation.messages.order_by("created_at").values_list("pk", "parent_id")
        for pk, parent_id in rows:
            children.setdefault(parent_id, []).append(pk)
            parent[pk] = parent_id
        return cls(children, parent)

    def siblings(self, pk) -> list:
        """The versions of a message, itself included, oldest first."""
        return self.children.get(self.parent.get(pk), [pk])

    def latest_leaf(self, pk):
        """The end of the newest branch below ``pk``: what a version shows when chosen."""
        while self.children.get(pk):
            pk = self.children[pk][-1]
        return pk

    def path_to(self, leaf) -> list:
        ids = []
        while leaf is not None and leaf in self.parent:
            ids.append(leaf)
            leaf = self.parent[leaf]
        ids.reverse()
        return ids


def thread(conversation: Conversation, versions: Versions | None = None) -> list[Message]:
    """The conversation as it reads now, oldest first: the path up to its current leaf."""
    versions = versions or Versions.of(conversation)
    # Read afresh: another request may have moved it since ``conversation`` was loaded.
    leaf = Conversation.objects.filter(pk=conversation.pk).values_list("current_leaf_id")[0][0]
    if leaf not in versions.parent:
        # No thread chosen yet (or its last message is gone): the newest branch.
        leaf = versions.latest_leaf(None)
    ids = versions.path_to(leaf)
    rows = {m.pk: m for m in conversation.messages.filter(pk__in=ids)}
    return [rows[pk] for pk in ids]


def history(conversation: Conversation, *, before: Message | None = None) -> list[dict]:
    """The thread shown so far, oldest first, as the engine takes it; empty answers and an
    answer being written are skipped. ``before``: only what comes before that message."""
    messages = thread(conversation)
    if before is not None:
        messages = messages[: [m.pk for m in messages].index(before.pk)]
    return _as_history(conversation, messages)


def _as_history(conversation: Conversation, messages: list[Message]) -> list[dict]:
    """``messages`` (a thread, oldest first) as the engine takes them, after the
    conversation's instructions."""
    turns = [
        {"role": message.role, "content": message.content}
        for message in messages
        if message.content and message.status != Message.Status.STREAMING
    ]
    if conversation.instructions:
        # The engine puts them after the site's own system prompt (Engine.prompt_ids).
        return [{"role": "system", "content": conversation.instructions}, *turns]
    return turns


@transaction.atomic
def fail_stale_answers(*, actor, request=None, scope=None, stale_ids=None) -> int:
    """Answers of ``actor`` still 'being written' long after any worker could be writing them
    (a worker and the browser both went away) become errors, keeping what was written; each
    is recorded as generation.failed with the reason "stalled". Returns how many.
    ``stale_ids``: those answers, where the caller has already found them."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=2 * settings.CHAT_STALL_TIMEOUT)
    stale = Message.objects.filter(
        conversation__user=actor, status=Message.Status.STREAMING, created_at__lt=cutoff
    ).select_related("conversation")
    if stale_ids is not None:
        if not stale_ids:
            return 0
        stale = stale.filter(pk__in=stale_ids)
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


def answers_running(*, actor, scope=None) -> int:
    """``generations_running`` after ``fail_stale_answers``, with one query where nothing is
    stale (as good as always): the answers being written are read once, and the stale ones
    among them ended."""
    cutoff = timezone.now() - datetime.timedelta(seconds=2 * settings.CHAT_STALL_TIMEOUT)
    streaming = list(
        Message.objects.filter(
            conversation__user=actor, status=Message.Status.STREAMING
        ).values_list("pk", "created_at")
    )
    stale = [pk for pk, created_at in streaming if created_at < cutoff]
    ended = fail_stale_answers(actor=actor, scope=scope, stale_ids=stale) if stale else 0
    return len(streaming) - ended + sum(count(actor) for count in UNSTORED_GENERATION_COUNTERS)


@dataclass(frozen=True)
class ApiCaller:
    """The token an API call came with, for the conversation it starts when the site keeps
    API calls (chat knows nothing else of tokens): its name and visible first characters."""

    token_name: str
    token_prefix: str


@dataclass(frozen=True)
class Turn:
    conversation: Conversation
    question: Message
    answer: Message
    history: list[dict]
    new_conversation: bool

    @property
    def params(self) -> dict:
        """The conversation's own sampling settings, as a frame's ``params``."""
        return settings_params(self.conversation)


class GenerationInProgress(Exception):
    """The conversation already has an answer being written."""


def _locked(actor, conversation_id) -> Conversation:
    """The actor's conversation, locked against a second turn starting at the same time."""
    conversation = conversation_of(actor, conversation_id)
    Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    if conversation.messages.filter(status=Message.Status.STREAMING).exists():
        raise GenerationInProgress
    return conversation


def _remember_model(conversation: Conversation, model_name: str) -> None:
    """The conversation's model is the one its latest turn went to."""
    if conversation.model_name != model_name:
        conversation.model_name = model_name
        Conversation.objects.filter(pk=conversation.pk).update(model_name=model_name)


def _ask(conversation: Conversation, *, parent_id, content: str, model_name: str):
    """A question after ``parent_id`` and the empty answer to stream into; they become the
    end of the thread shown."""
    question = Message.objects.create(
        conversation=conversation, parent_id=parent_id, role=Message.Role.USER, content=content
    )
    answer = _empty_answer(conversation, question, model_name)
    return question, answer


def _empty_answer(conversation: Conversation, question: Message, model_name: str) -> Message:
    answer = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model_name,
    )
    conversation.current_leaf = answer
    Conversation.objects.filter(pk=conversation.pk).update(
        current_leaf=answer, updated_at=timezone.now()
    )
    return answer


@transaction.atomic
def start_turn(
    *,
    actor,
    conversation_id,
    content: str,
    model_name: str,
    scope=None,
    new_settings: ChatSettings | None = None,
    citations: list[dict] | None = None,
    api_caller: ApiCaller | None = None,
) -> Turn:
    """Store the user's message and an empty answer to be streamed into; returns what the
    model needs to answer. ``new_settings``: a new conversation's settings (chosen before
    its first message). ``citations`` (chat.retrieval) are stored with the answer and put
    before the question, quoted, in what the model reads. ``api_caller``: the token of an
    API call, which marks the conversation it starts as the API's."""
    model_name = model_name[:MODEL_NAME_MAX]
    new = conversation_id is None
    if new:
        conversation = Conversation(user=actor, title=title_from(content), model_name=model_name)
        if api_caller is not None:
            conversation.origin = Conversation.Origin.API
            conversation.api_token_name = api_caller.token_name[:100]
            conversation.api_token_prefix = api_caller.token_prefix[:16]
        apply_settings(conversation, new_settings or ChatSettings())
        conversation.save()
        shown = []
    else:
        conversation = _locked(actor, conversation_id)
        _remember_model(conversation, model_name)
        shown = thread(conversation)
    parent_id = shown[-1].pk if shown else None
    question, answer = _ask(
        conversation, parent_id=parent_id, content=content, model_name=model_name
    )
    # The turn's events go into the audit chain together, in this order, at its end.
    about = {"actor": actor, "scope": scope, "target": conversation}
    events = []
    if new:
        events.append(
            {
                "action": "conversation.created",
                **about,
                "model": model_name,
                "origin": conversation.origin,
            }
        )
    events.append(
        {
            "action": "message.sent",
            **about,
            "content_length": len(content),
            "message_id": str(question.pk),
            "model": model_name,
        }
    )
    # The thread read above, now ending in the question (the conversation is locked).
    turns = _as_history(conversation, [*shown, question])
    if citations:
        AnswerSources.objects.create(answer=answer, citations=json.dumps(citations))
        events.append(
            {
                "action": "retrieval",
                **about,
                "message_id": str(answer.pk),
                "document_ids": sorted({c["document"] for c in citations}),
                "passage_count": len(citations),
            }
        )
        turns[-1] = {"role": "user", "content": retrieval.with_excerpts(content, citations)}
    record_together(*events)
    return Turn(conversation, question, answer, turns, new)


def citations_of(message: Message) -> list[dict]:
    try:
        return json.loads(message.sources.citations)
    except AnswerSources.DoesNotExist:
        return []


@transaction.atomic
def regenerate(*, actor, conversation_id, model_name: str, scope=None) -> Turn:
    """A new version of the latest answer: the one shown stays as an earlier version.
    MessageNotFound when the conversation does not end with an answer."""
    conversation = _locked(actor, conversation_id)
    shown = thread(conversation)
    if not shown or shown[-1].role != Message.Role.ASSISTANT or shown[-1].parent_id is None:
        raise MessageNotFound
    replaced = shown[-1]
    question = shown[-2]
    answer = _empty_answer(conversation, question, model_name)
    record(
        "generation.regenerated",
        actor=actor,
        scope=scope,
        target=conversation,
        message_id=str(answer.pk),
        replaces=str(replaced.pk),
        version=len(Versions.of(conversation).siblings(answer.pk)),
    )
    return Turn(conversation, question, answer, history(conversation), False)


@transaction.atomic
def edit_and_resend(
    *, actor, conversation_id, message_id, content: str, model_name: str, scope=None
) -> Turn:
    """Ask the question ``message_id`` again as ``content``: the conversation continues from
    it, and what followed the old question stays reachable as an earlier version.
    MessageNotFound unless ``message_id`` is a question of the thread shown."""
    conversation = _locked(actor, conversation_id)
    shown = {m.pk: m for m in thread(conversation)}
    try:
        replaced = shown[uuid.UUID(str(message_id))]
    except (KeyError, ValueError):
        raise MessageNotFound from None
    if replaced.role != Message.Role.USER:
        raise MessageNotFound
    question, answer = _ask(
        conversation, parent_id=replaced.parent_id, content=content, model_name=model_name
    )
    record(
        "message.edited",
        actor=actor,
        scope=scope,
        target=conversation,
        content_length=len(content),
        message_id=str(question.pk),
        replaces=str(replaced.pk),
    )
    return Turn(conversation, question, answer, history(conversation), False)


@transaction.atomic
def show_version(*, actor, conversation: Conversation, message_id, request=None) -> None:
    """Show the version ``message_id`` (and the newest thread below it); the next question
    continues from there. MessageNotFound when it is not a message of the conversation;
    GenerationInProgress while an answer is being written in it."""
    conversation = _locked(actor, conversation.pk)
    versions = Versions.of(conversation)
    try:
        chosen = uuid.UUID(str(message_id))
    except ValueError:
        raise MessageNotFound from None
    if chosen not in versions.parent:
        raise MessageNotFound
    conversation.current_leaf_id = versions.latest_leaf(chosen)
    conversation.save(update_fields=["current_leaf"])
    record(
        "conversation.version_shown",
        actor=actor,
        request=request,
        target=conversation,
        message_id=str(chosen),
    )


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
# What finishing an answer writes (the text's search bits come with its content).
FINISHED_FIELDS = [
    "content",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "time_to_first_token_ms",
    "duration_ms",
    "finished_at",
    "model_name",
]


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
        # Only the answer's row is locked: the conversation and its owner are read with it.
        Message.objects.select_for_update(of=("self",))
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
    answer.save(update_fields=FINISHED_FIELDS)
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


def erased_conversation_counts() -> dict[str, dict[int, int]]:
    """Conversations whose data key is not in the key store, by user: what reads as erased in
    a restored database. Registered with core.datakeys for the restore's erasure check."""
    erased: dict[int, int] = {}
    for user_id, conversation_id in Conversation.objects.values_list("user_id", "pk").iterator():
        if not datakeys.exists(datakeys.conversation_key(user_id, conversation_id)):
            erased[user_id] = erased.get(user_id, 0) + 1
    return {"conversations": erased}


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
