"""Session keys are stored hashed (accounts.models.hashed_session_key), in django_session and
in the sign-in records, which also note the last activity, address and user agent."""

import hashlib

import django.utils.timezone
from django.db import migrations, models


def _hashed(session_key: str) -> str:
    # A copy of accounts.models.hashed_session_key as it was when this migration was written.
    return hashlib.sha256(session_key.encode()).hexdigest()[:40]


def hash_existing_keys(apps, schema_editor):
    Session = apps.get_model("sessions", "Session")
    SignInSession = apps.get_model("accounts", "SignInSession")
    for session in Session.objects.all():
        hashed = _hashed(session.session_key)
        Session.objects.create(
            session_key=hashed, session_data=session.session_data, expire_date=session.expire_date
        )
        session.delete()
    for sign_in in SignInSession.objects.all():
        sign_in.key_hash = _hashed(sign_in.session_key)
        sign_in.save(update_fields=["key_hash"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_legal_holds"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="signinsession",
            name="key_hash",
            field=models.CharField(max_length=40, null=True),
        ),
        migrations.RunPython(hash_existing_keys, migrations.RunPython.noop),
        migrations.RemoveField(model_name="signinsession", name="session_key"),
        migrations.AlterField(
            model_name="signinsession",
            name="key_hash",
            field=models.CharField(
                help_text="A hash of the session key; the key is not stored.",
                max_length=40,
                unique=True,
            ),
        ),
        migrations.AlterModelOptions(
            name="signinsession",
            options={"ordering": ["-last_seen_at"], "verbose_name": "sign-in session"},
        ),
        migrations.AddField(
            model_name="signinsession",
            name="ip_address",
            field=models.GenericIPAddressField(
                blank=True, help_text="The address of the last request.", null=True
            ),
        ),
        migrations.AddField(
            model_name="signinsession",
            name="last_seen_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="The last request of this session (to the minute).",
            ),
        ),
        migrations.AddField(
            model_name="signinsession",
            name="user_agent",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.AlterField(
            model_name="signinsession",
            name="started_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now, help_text="When the user signed in."
            ),
        ),
    ]
