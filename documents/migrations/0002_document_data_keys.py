"""Document names, files, passages and vectors move from the chat keyring to each document's
own data key (core.datakeys, scope document-<id>, owned by its uploader). Reading in batches
keeps memory flat; the migration's transaction makes it all or nothing (keys made for a
rolled-back run are used again by the next one)."""

from django.db import migrations

import core.crypto
from core import datakeys

BATCH = 200
SCOPE = "document-"


def _rows(model, *related):
    last = None
    while True:
        rows = model.objects.order_by("pk").select_related(*related)
        if last is not None:
            rows = rows.filter(pk__gt=last)
        batch = list(rows[:BATCH])
        if not batch:
            return
        yield from batch
        last = batch[-1].pk


def _seal(owner_id, document_id, value):
    ref = datakeys.KeyRef(int(owner_id), f"{SCOPE}{document_id}")
    return core.crypto.Sealed(datakeys.seal(ref, value))


def seal_under_data_keys(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    DocumentFile = apps.get_model("documents", "DocumentFile")
    Chunk = apps.get_model("documents", "Chunk")
    for document in _rows(Document):
        Document.objects.filter(pk=document.pk).update(
            name=_seal(document.owner_id, document.pk, document.name)
        )
    for file in _rows(DocumentFile, "document"):
        DocumentFile.objects.filter(pk=file.pk).update(
            data=_seal(file.document.owner_id, file.document_id, file.data)
        )
    for chunk in _rows(Chunk, "document"):
        owner_id = chunk.document.owner_id
        Chunk.objects.filter(pk=chunk.pk).update(
            passage=_seal(owner_id, chunk.document_id, chunk.passage),
            vector=_seal(owner_id, chunk.document_id, chunk.vector),
        )


def back_under_the_keyring(apps, schema_editor):
    # Erased values stay erased: their keys are gone.
    for name, fields in (
        ("Document", ("name",)),
        ("DocumentFile", ("data",)),
        ("Chunk", ("passage", "vector")),
    ):
        model = apps.get_model("documents", name)
        for row in _rows(model):
            values = {
                field: getattr(row, field)
                for field in fields
                if not isinstance(getattr(row, field), datakeys.Erased)
            }
            if values:
                model.objects.filter(pk=row.pk).update(**values)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0001_documents_chunks_collections"),
    ]

    operations = [
        migrations.AlterField(
            model_name="chunk",
            name="passage",
            field=core.crypto.EncryptedTextField(
                help_text="The passage's text, sealed under the document's data key."
            ),
        ),
        migrations.AlterField(
            model_name="chunk",
            name="vector",
            field=core.crypto.EncryptedTextField(
                help_text="Base64 of float32 values, sealed under the document's data key."
            ),
        ),
        migrations.AlterField(
            model_name="document",
            name="name",
            field=core.crypto.EncryptedTextField(help_text="Sealed under the document's data key."),
        ),
        migrations.AlterField(
            model_name="documentfile",
            name="data",
            field=core.crypto.EncryptedTextField(
                help_text="Base64 of the file, sealed under the document's data key."
            ),
        ),
        migrations.RunPython(seal_under_data_keys, back_under_the_keyring),
    ]
