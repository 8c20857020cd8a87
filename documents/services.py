"""The only code that changes documents and collections. Each function that changes data is
atomic and writes its audit event in the same transaction.

Who may read what is decided here, once, as a queryset (``readable_documents``) that the
list, the detail, the attach check and the search all start from: a personal document is its
owner's only; a collection's documents are readable by its owner group and the groups granted
``can_read``.
"""

import base64
import logging
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum

from accounts.erasure import ErasureRefused, held_user_ids, refuse_if_held
from audit.log import record
from core import datakeys
from core.labels import one_line_label
from documents import vectors
from documents.extraction import detect_kind
from documents.models import Collection, CollectionGrant, Document, DocumentFile, document_key

logger = logging.getLogger(__name__)

NAME_MAX = 200


class UploadRefused(Exception):
    """An upload that breaks a rule; the message is a sentence for the person uploading."""


class DocumentNotFound(Exception):
    """No such document, or not one the asking user may read (the same answer for both)."""


class CollectionNotFound(Exception):
    """No such collection, or not one the asking user may use (the same answer for both)."""


class DocumentHeld(Exception):
    """The document's uploader is under a legal hold: nothing of theirs is erased now."""


HELD = (
    "This document cannot be deleted now: the organisation must keep its uploader's data for "
    "a legal matter (a legal hold). Ask Compliance if you have questions."
)
HELD_IN_COLLECTION = (
    "This collection cannot be deleted now: some of its documents were uploaded by people "
    "whose data the organisation must keep for a legal matter (a legal hold). Ask Compliance."
)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


# --- Rights --------------------------------------------------------------------------------


def readable_collections(user):
    groups = user.groups.all()
    return Collection.objects.filter(
        Q(owner_group__in=groups) | Q(grants__group__in=groups, grants__can_read=True)
    ).distinct()


def addable_collections(user):
    groups = user.groups.all()
    return Collection.objects.filter(
        Q(owner_group__in=groups) | Q(grants__group__in=groups, grants__can_add=True)
    ).distinct()


def readable_documents(user):
    """Every document ``user`` may read: their personal ones and those of collections their
    groups may read."""
    if user is None or not user.is_authenticated:
        return Document.objects.none()
    return Document.objects.filter(
        Q(owner=user, collection__isnull=True)
        | Q(collection__in=readable_collections(user).values("pk"))
    )


def _uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def document_for(user, document_id) -> Document:
    document_id = _uuid(document_id)
    document = readable_documents(user).filter(pk=document_id).first() if document_id else None
    if document is None:
        raise DocumentNotFound
    return document


def collection_for_adding(user, collection_id) -> Collection:
    collection_id = _uuid(collection_id)
    found = addable_collections(user).filter(pk=collection_id).first() if collection_id else None
    if found is None:
        raise CollectionNotFound
    return found


def may_delete(user, document: Document) -> bool:
    """The uploader always; for a collection's document, also its owner group's members."""
    if document.owner_id == user.pk:
        return True
    return (
        document.collection_id is not None
        and user.groups.filter(pk=document.collection.owner_group_id).exists()
    )


def as_dict(document: Document) -> dict:
    status = document.status
    if status == Document.Status.INDEXING:
        label = f"indexing {document.progress}%"
    elif status == Document.Status.FAILED:
        label = f"failed: {document.failure_reason}"
    elif document.lease_until is not None and document.progress < 100:
        # Indexed again for a new embedding model; its old index answers meanwhile.
        label = f"ready (indexing again {document.progress}%)"
    else:
        label = status
    return {
        "id": str(document.pk),
        "name": document.name,
        "kind": document.kind,
        "size": document.size,
        "status": status,
        "progress": document.progress,
        "status_label": label,
        "failure_reason": document.failure_reason,
        "pages": document.pages,
        "collection": str(document.collection_id) if document.collection_id else None,
        "created_at": document.created_at.isoformat(),
    }


# --- Upload and deletion ----------------------------------------------------------------------


def clean_name(name: str) -> str:
    """A file name as a label only: one line, no path, never used to open anything."""
    name = one_line_label(str(name or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = name or "Untitled document"
    return name if len(name) <= NAME_MAX else name[: NAME_MAX - 1] + "…"


@transaction.atomic
def upload(*, actor, name: str, data: bytes, collection=None, request=None) -> Document:
    """Store a file (encrypted) and queue it for indexing; raises UploadRefused."""
    limit = settings.DOCUMENTS_MAX_FILE_BYTES
    if len(data) > limit:
        raise UploadRefused(
            f"The file is {_megabytes(len(data))}; files may be at most {_megabytes(limit)}."
        )
    if not data:
        raise UploadRefused("The file is empty; choose a file with some text in it.")
    kind = detect_kind(data)
    if kind is None:
        raise UploadRefused(
            "This type of file cannot be read. Upload a PDF, a Word document (.docx), a web "
            "page (HTML), Markdown or plain text."
        )
    # One upload at a time per person, so two parallel uploads cannot both pass the limits.
    get_user_model().objects.select_for_update().filter(pk=actor.pk).first()
    mine = Document.objects.filter(owner=actor)
    if mine.count() >= settings.DOCUMENTS_MAX_PER_USER:
        raise UploadRefused(
            f"You already have {settings.DOCUMENTS_MAX_PER_USER} documents, the most one "
            "person may have; delete some you no longer need first."
        )
    used = mine.aggregate(total=Sum("size"))["total"] or 0
    if used + len(data) > settings.DOCUMENTS_MAX_BYTES_PER_USER:
        raise UploadRefused(
            f"Your documents use {_megabytes(used)} of {_megabytes(settings.DOCUMENTS_MAX_BYTES_PER_USER)}; "
            "delete some you no longer need before adding this one."
        )
    document = Document.objects.create(
        owner=actor, collection=collection, name=clean_name(name), kind=kind, size=len(data)
    )
    DocumentFile.objects.create(document=document, data=base64.b64encode(data).decode("ascii"))
    record(
        "document.uploaded",
        actor=actor,
        request=request,
        target=document,
        kind=kind,
        size=len(data),
        collection_id=str(collection.pk) if collection else None,
    )
    return document


def _forget_deleted_pages() -> None:
    """SQLite keeps a deleted row's bytes in free pages and in the write-ahead log until
    they are reused: secure_delete (settings) zeroes freed pages, and a checkpoint empties
    the log. PostgreSQL's VACUUM does the same for its files (docs/deploy.md)."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def delete(*, actor, document: Document, request=None, erasing: bool = False) -> None:
    """Remove a document, its file, text, chunks and vectors, and every cached copy; its
    data key goes with its row (``destroy_document_key``), so no backup can bring it back.
    DocumentHeld when its uploader is under a legal hold (``erasing``: the user's erasure,
    which checked the hold itself)."""
    document_id = document.pk
    with transaction.atomic():
        if not erasing:
            try:
                refuse_if_held(document.owner, "This document")
            except ErasureRefused:
                raise DocumentHeld(HELD) from None
        chunks = document.chunks.count()
        Document.objects.filter(pk=document_id).delete()
        record(
            "document.deleted",
            actor=actor,
            request=request,
            target=f"documents.document:{document_id}",
            chunk_count=chunks,
        )
        transaction.on_commit(lambda: vectors.forget(document_id))
    _forget_deleted_pages()


def destroy_document_key(sender, instance, **kwargs) -> None:
    """``post_delete`` of a document, however it goes (deleted, its collection deleted, its
    user erased or deleted): its data key goes with it, in the same transaction."""
    datakeys.destroy(document_key(instance.owner_id, instance.pk))


def delete_all_of(*, actor, user, request=None) -> int:
    """Every document ``user`` uploaded, personal or in a collection (when the account is
    erased; ``accounts.erasure.erase_user`` has checked for a legal hold)."""
    deleted = 0
    for document in Document.objects.filter(owner=user):
        delete(actor=actor, document=document, request=request, erasing=True)
        deleted += 1
    return deleted


def erase_documents_of(*, sender, user, actor, **kwargs) -> dict[str, int]:
    """``accounts.signals.user_erasing``: delete the user's documents, each audited."""
    return {"documents": delete_all_of(actor=actor, user=user)}


@transaction.atomic
def forget_erased_document(user_id: int, document_id: str) -> int:
    """A document deleted after the backup this database came from (its key is gone, it
    reads as erased): its rows go too. Registered with core.datakeys for
    ``manage.py reapply_erasures``; returns 1 when there was such a document."""
    document = Document.objects.filter(pk=_uuid(document_id), owner_id=user_id).first()
    if document is None or datakeys.exists(document_key(user_id, document.pk)):
        return 0
    found_id = document.pk
    chunks = document.chunks.count()
    document.delete()
    record(
        "document.deleted",
        actor=None,
        target=f"documents.document:{found_id}",
        chunk_count=chunks,
        reapplied_after_restore=True,
    )
    transaction.on_commit(lambda: vectors.forget(found_id))
    return 1


def erased_document_counts() -> dict[str, dict[int, int]]:
    """Documents whose data key is not in the key store, with their files, passages and
    vectors, by uploader: what reads as erased in a restored database. Registered with
    core.datakeys for the restore's erasure check."""
    counts: dict[str, dict[int, int]] = {
        "documents": {},
        "document files": {},
        "passages": {},
        "vectors": {},
    }
    rows = Document.objects.annotate(
        chunk_count=Count("chunks"),
        has_file=Exists(DocumentFile.objects.filter(document=OuterRef("pk"))),
    ).values_list("owner_id", "pk", "chunk_count", "has_file")
    for owner_id, document_id, chunk_count, has_file in rows.iterator():
        if datakeys.exists(document_key(owner_id, document_id)):
            continue
        # Every passage is stored with its vector, both sealed under the document's key.
        for label, n in (
            ("documents", 1),
            ("document files", int(has_file)),
            ("passages", chunk_count),
            ("vectors", chunk_count),
        ):
            counts[label][owner_id] = counts[label].get(owner_id, 0) + n
    return counts


# --- Collections (admins) ---------------------------------------------------------------------


@transaction.atomic
def create_collection(*, actor, name: str, owner_group, request=None) -> Collection:
    collection = Collection.objects.create(name=one_line_label(name), owner_group=owner_group)
    record(
        "collection.created",
        actor=actor,
        request=request,
        target=collection,
        group_id=owner_group.pk,
    )
    return collection


@transaction.atomic
def grant(*, actor, collection, group, can_read: bool, can_add: bool, request=None):
    """Let ``group`` read and/or add to ``collection`` (replaces an earlier grant)."""
    grant_row, _created = CollectionGrant.objects.update_or_create(
        collection=collection, group=group, defaults={"can_read": can_read, "can_add": can_add}
    )
    record(
        "collection.granted",
        actor=actor,
        request=request,
        target=collection,
        group_id=group.pk,
        can_read=can_read,
        can_add=can_add,
    )
    return grant_row


@transaction.atomic
def revoke(*, actor, collection, group, request=None) -> None:
    CollectionGrant.objects.filter(collection=collection, group=group).delete()
    record("collection.revoked", actor=actor, request=request, target=collection, group_id=group.pk)


def collection_held(collection) -> bool:
    """Whether a document of the collection was uploaded by someone under a legal hold."""
    return Document.objects.filter(collection=collection, owner_id__in=held_user_ids()).exists()


def delete_collection(*, actor, collection, request=None) -> None:
    """A collection and every document in it; DocumentHeld (nothing deleted) when one of them
    was uploaded by someone under a legal hold."""
    if collection_held(collection):
        raise DocumentHeld(HELD_IN_COLLECTION)
    for document in Document.objects.filter(collection=collection):
        delete(actor=actor, document=document, request=request)
    with transaction.atomic():
        record("collection.deleted", actor=actor, request=request, target=collection)
        collection.delete()
    _forget_deleted_pages()
