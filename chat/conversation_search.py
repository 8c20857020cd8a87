"""Search over a user's own conversations (titles and message text): the keyed filters of
chat/search.py pick the candidates, and only those are decrypted to confirm a match and
cut a snippet. Nothing of the query is stored."""

import uuid

from django.db import connection
from django.db.models import F, IntegerField, Value
from django.db.models.functions import Cast, Length, Substr

from chat import search as search_index
from chat.models import Conversation, Message, origin_as_dict

# Candidates are decrypted this many at a time, newest conversations first, until enough
# results are found: a small first batch, as the first results are often enough.
SEARCH_FIRST_BATCH = 60
SEARCH_BATCH = 200


def _search_candidates(user, candidates: "search_index.Filter"):
    """[(conversation id, whether its title may match)], newest first, and the messages
    that may match by conversation id: {conversation id: [(created, message id)]}. Ids are
    as the database stores them (UUIDs, or hex text in SQLite)."""
    # The filters of every row are read with a plain cursor: Django's per-row converters
    # (ids, dates) would cost more than the filters' own test.
    titles_sql = (
        Conversation.objects.filter(user=user)
        .order_by("-updated_at", "pk")
        .values_list("pk", "search_bits")
    )
    # Of each message's filter the database hands out only its length, its key fingerprint
    # and the one byte that holds each bit the query needs, not the whole filter.
    bits = F("search_bits")
    size = (Length(bits) - search_index.FINGERPRINT_BYTES) * 8
    needed = {
        f"byte{i}": Substr(
            bits,
            # The % operator, not Mod(): SQLite would call back into Python for every row.
            # Cast: PostgreSQL's substring() takes an integer position, not a bigint.
            Cast(search_index.FINGERPRINT_BYTES + 1 + Value(number) % size / 8, IntegerField()),
            1,
        )
        for i, number in enumerate(candidates.hashes)
    }
    messages_sql = (
        Message.objects.filter(conversation__user=user)
        .annotate(
            filter_length=Length(bits),
            fingerprint=Substr(bits, 1, search_index.FINGERPRINT_BYTES),
            **needed,
        )
        .order_by()
        .values_list("pk", "conversation_id", "created_at", "filter_length", "fingerprint", *needed)
    )
    with connection.cursor() as cursor:
        cursor.execute(*titles_sql.query.sql_with_params())
        conversations = [(pk, candidates.may_match(bits)) for pk, bits in cursor.fetchall()]
        cursor.execute(*messages_sql.query.sql_with_params())
        in_conversation = {}
        for pk, conversation, created, length, fingerprint, *fetched in cursor.fetchall():
            if candidates.fetched_may_match(length, fingerprint, fetched):
                in_conversation.setdefault(conversation, []).append((created, pk))
    return conversations, in_conversation


def search(user, query: "search_index.Query") -> dict:
    """The user's titles and messages holding every word of ``query`` (each at the start
    of a word), newest conversations first: {"results": [...], "truncated": bool}. Reads the
    keyed filters, decrypts only the rows they let through (chat/search.py). Writes nothing."""
    candidates = query.filter()
    pattern = query.pattern()
    conversations, in_conversation = _search_candidates(user, candidates)
    # Newest conversation first; in each, its title, then its messages oldest first.
    # (The cursor gives ids as the database stores them: UUIDs, or hex text in SQLite.)
    order = []
    for pk, title_may_match in conversations:
        conversation = uuid.UUID(str(pk))
        if title_may_match:
            order.append((conversation, None))
        order.extend(
            (conversation, uuid.UUID(str(m))) for _, m in sorted(in_conversation.get(pk, ()))
        )
    found, truncated = [], False
    titles_checked = {}
    start, size = 0, SEARCH_FIRST_BATCH
    while start < len(order) and not truncated:
        batch = order[start : start + size]
        start, size = start + size, SEARCH_BATCH
        for_titles = {c for c, m in batch if m is None} - titles_checked.keys()
        titles_checked.update(
            Conversation.objects.filter(pk__in=for_titles).values_list("pk", "title")
        )
        texts = {
            m.pk: m
            for m in Message.objects.filter(pk__in=[m for _, m in batch if m]).only(
                "pk", "role", "content"
            )
        }
        for conversation, message_id in batch:
            message = texts.get(message_id) if message_id else None
            text = message.content if message else titles_checked.get(conversation)
            if text is None or not query.matches(text):
                continue
            if len(found) == search_index.RESULTS_MAX:
                truncated = True
                break
            found.append(
                {
                    "conversation": conversation,
                    "message": str(message.pk) if message else None,
                    "role": message.role if message else None,
                    "snippet": search_index.snippet(text, pattern),
                }
            )
    # Titles are decrypted only for the conversations found.
    shown = Conversation.objects.filter(pk__in={r["conversation"] for r in found}).only(
        "pk", "user_id", "title", "origin", "api_token_name", "api_token_prefix"
    )
    shown = {c.pk: c for c in shown}
    for result in found:
        conversation = shown[result["conversation"]]
        result["title"] = conversation.title
        result.update(origin_as_dict(conversation))
        result["conversation"] = str(result["conversation"])
    return {"results": found, "truncated": truncated}
