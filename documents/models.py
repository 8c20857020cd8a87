"""Documents, their chunks and vectors, and group collections.

Everything derived from a file is sealed under the document's own data key
(``core.datakeys``, scope ``document-<id>``, owned by its uploader): the file itself, its
name, every chunk's text and every chunk's vector (an embedding can be inverted into much of
the text it came from). Deleting a document destroys its key, so a database backup taken
before cannot show it either. Only sizes, states and ids are stored in the clear.
"""

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from core import datakeys
from core.crypto import EncryptedTextField

DOCUMENT_SCOPE = "document-"


def document_key(owner_id: int, document_id) -> datakeys.KeyRef:
    """The data key of one document (personal or in a collection): its uploader's, one per
    document, so that one document can be erased."""
    return datakeys.KeyRef(int(owner_id), f"{DOCUMENT_SCOPE}{document_id}")


def _document_key(document) -> datakeys.KeyRef:
    return document_key(document.owner_id, document.pk)


def _part_key(row) -> datakeys.KeyRef:
    return document_key(row.document.owner_id, row.document_id)


class Collection(models.Model):
    """Documents a group shares: owned by a group, readable and extendable by the groups an
    admin grants. Admins manage grants; they read no document through it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    owner_group = models.ForeignKey(
        Group,
        on_delete=models.PROTECT,
        related_name="owned_collections",
        help_text="Its members may read the collection and add documents to it.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CollectionGrant(models.Model):
    """What one more group may do with a collection."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="collection_grants")
    can_read = models.BooleanField(default=True, help_text="Members may ask questions about it.")
    can_add = models.BooleanField(default=False, help_text="Members may upload documents to it.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "group"], name="one_grant_per_group")
        ]

    def __str__(self):
        return f"{self.group} on {self.collection}"


class Document(models.Model):
    """One uploaded file: personal (its owner's only) or in a collection."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        INDEXING = "indexing"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents"
    )
    collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.CASCADE, related_name="documents"
    )
    name = EncryptedTextField(
        help_text="Sealed under the document's data key.", data_key=_document_key
    )
    kind = models.CharField(max_length=16, help_text="Decided from the content, not the name.")
    size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.CharField(max_length=300, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    # The indexing job: a worker holds the document until lease_until and renews it while it
    # works; a lease that runs out (the worker died) lets another worker take it again.
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self):
        return f"document {self.id} ({self.status})"


class DocumentFile(models.Model):
    """The uploaded bytes, kept apart from the document so lists never load them."""

    document = models.OneToOneField(
        Document, on_delete=models.CASCADE, primary_key=True, related_name="file"
    )
    data = EncryptedTextField(
        help_text="Base64 of the file, sealed under the document's data key.",
        data_key=_part_key,
        key_related=("document",),
        # The document made the key; its parts never make one (docs/architecture.md).
        creates_key=False,
    )

    def __str__(self):
        return f"file of {self.document_id}"


class Chunk(models.Model):
    """A passage of a document and its embedding, both encrypted."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    passage = EncryptedTextField(
        help_text="The passage's text, sealed under the document's data key.",
        data_key=_part_key,
        key_related=("document",),
        creates_key=False,
    )
    vector = EncryptedTextField(
        help_text="Base64 of float32 values, sealed under the document's data key.",
        data_key=_part_key,
        key_related=("document",),
        creates_key=False,
    )
    embedding_model = models.CharField(max_length=200)

    class Meta:
        ordering = ["document", "position"]
        indexes = [models.Index(fields=["document", "embedding_model"])]

    def __str__(self):
        return f"chunk {self.position} of {self.document_id}"
