"""Upgrading to hashed session keys keeps everyone signed in: the migration stores each
existing session, and its sign-in record, under the hash of its key."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import hashed_session_key
from accounts.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0005_legal_holds"), ("sessions", "0001_initial")]
AFTER = [("accounts", "0006_hashed_session_keys_and_activity")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_sessions_are_stored_under_their_hash_and_still_work(employee):
    old = migrate(BEFORE)
    plain_key = "k" * 32
    data = SessionStore().encode({"_auth_user_id": str(employee.pk)})
    old.get_model("sessions", "Session").objects.create(
        session_key=plain_key,
        session_data=data,
        expire_date=timezone.now() + datetime.timedelta(hours=1),
    )
    old.get_model("accounts", "SignInSession").objects.create(
        user_id=employee.pk, session_key=plain_key
    )

    new = migrate(AFTER)

    stored = new.get_model("sessions", "Session").objects.values_list("session_key", flat=True)
    assert list(stored) == [hashed_session_key(plain_key)]
    record = new.get_model("accounts", "SignInSession").objects.get()
    assert record.key_hash == hashed_session_key(plain_key)
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert SessionStore(plain_key).load() == {"_auth_user_id": str(employee.pk)}
