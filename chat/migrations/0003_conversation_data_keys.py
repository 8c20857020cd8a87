"""Conversation titles and messages move from the chat keyring to each conversation's own
data key (core.datakeys). Reading in batches keeps memory flat; the migration's transaction
makes it all or nothing (keys made for a rolled-back run are used again by the next one)."""

from django.db import migrations

import core.crypto
from core import datakeys

BATCH = 500


def _rows(model):
    last = None
    while True:
        rows = model.objects.order_by("pk").select_related(
            *(("conversation",) if model.__name__ == "Message" else ())
        )
        if last is not None:
            rows = rows.filter(pk__gt=last)
        batch = list(rows[:BATCH])
        if not batch:
            return
        yield from batch
        last = batch[-1].pk


def seal_under_data_keys(apps, schema_editor):
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    for conversation in _rows(Conversation):
        ref = datakeys.conversation_key(conversation.user_id, conversation.pk)
        Conversation.objects.filter(pk=conversation.pk).update(
            title=core.crypto.Sealed(datakeys.seal(ref, conversation.title))
        )
    for message in _rows(Message):
        ref = datakeys.conversation_key(message.conversation.user_id, message.conversation_id)
        Message.objects.filter(pk=message.pk).update(
            content=core.crypto.Sealed(datakeys.seal(ref, message.content))
        )


def back_under_the_keyring(apps, schema_editor):
    # Erased values stay erased: their keys are gone.
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    for model, field in ((Conversation, "title"), (Message, "content")):
        for row in _rows(model):
            value = getattr(row, field)
            if not isinstance(value, datakeys.Erased):
                model.objects.filter(pk=row.pk).update(**{field: value})


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_supervised_access"),
    ]

    operations = [
        migrations.AlterField(
            model_name="conversation",
            name="title",
            field=core.crypto.EncryptedTextField(
                help_text="Encrypted under the conversation's data key."
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="content",
            field=core.crypto.EncryptedTextField(
                blank=True, help_text="Encrypted under the conversation's data key."
            ),
        ),
        migrations.RunPython(seal_under_data_keys, back_under_the_keyring),
    ]
