"""The documents' section of a user's data archive (core.personal_data): the list of the
documents they uploaded (name, type, size, status, collection, dates), not the files."""

import json

from core import personal_data
from documents.models import Document


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def documents_section(user) -> personal_data.SectionData:
    documents = [
        {
            "id": str(document.pk),
            "name": str(document.name),
            "kind": document.kind,
            "size_bytes": document.size,
            "status": document.status,
            "pages": document.pages,
            "collection": document.collection.name if document.collection_id else None,
            "uploaded_at": _iso(document.created_at),
            "indexed_at": _iso(document.indexed_at),
        }
        for document in Document.objects.filter(owner=user)
        .select_related("collection")
        .order_by("created_at")
    ]
    return personal_data.SectionData(
        {"documents.json": json.dumps(documents, ensure_ascii=False, indent=2)}, len(documents)
    )
