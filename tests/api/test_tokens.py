"""Personal API tokens: made, kept only as a keyed hash, expired, revoked, and revoked with
the account or second factor they stood on; the operator's commands."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts import services as accounts_services
from api import services
from api.models import ApiToken
from audit.models import AuditEvent
from tests.support.personas import enrol_totp

pytestmark = pytest.mark.django_db


def make(user, name="notebook", **kwargs):
    return services.create_api_token(actor=user, user=user, name=name, **kwargs)


def test_a_token_is_kept_only_as_a_keyed_hash_with_a_visible_prefix(employee):
    token, text = make(employee)

    assert text.startswith("llm-") and len(text) == services.TOKEN_LENGTH
    assert token.prefix == text[: services.PREFIX_LENGTH]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        rows = cursor.fetchall()
    assert text not in repr(rows)
    assert text[services.PREFIX_LENGTH :] not in repr(rows)
    assert services.authenticate(text, source="10.0.0.1") == token


def test_it_lasts_30_days_unless_asked_and_never_more_than_the_site_allows(employee, settings):
    token, _ = make(employee)
    assert token.expires_at - token.created_at == pytest.approx(
        datetime.timedelta(days=30), abs=datetime.timedelta(seconds=5)
    )
    settings.API_TOKEN_MAX_DAYS = 10
    with pytest.raises(services.TokenError, match="at most 10 days"):
        make(employee, name="long", days=11)


def test_unknown_scopes_and_duplicate_names_are_refused(employee):
    with pytest.raises(services.TokenError, match="'admin' is not a scope"):
        make(employee, scopes="chat,admin")
    make(employee)
    with pytest.raises(services.TokenError, match="already have a token named"):
        make(employee)


def test_it_records_its_creation_without_the_token(employee):
    _, text = make(employee, scopes="chat")

    event = AuditEvent.objects.get(action="token.created")
    assert event.details["scopes"] == ["chat"]
    assert text not in repr(event.details)


def test_a_made_up_token_is_refused_and_recorded(employee):
    _, text = make(employee)
    forged = text[:-1] + ("a" if text[-1] != "a" else "b")

    assert services.authenticate(forged, source="10.0.0.1") is services.UNKNOWN
    assert AuditEvent.objects.filter(action="api.refused", details__reason="bad_token").exists()


def test_an_expired_token_is_refused_and_its_expiry_recorded_once(employee):
    token, text = make(employee)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())

    assert services.authenticate(text, source="10.0.0.1") is services.EXPIRED
    assert services.authenticate(text, source="10.0.0.1") is services.EXPIRED
    assert AuditEvent.objects.filter(action="token.expired").count() == 1
    assert AuditEvent.objects.filter(action="api.refused").count() == 2


def test_a_revoked_token_is_refused(employee):
    token, text = make(employee)
    assert services.revoke_api_token(actor=employee, token=token)

    assert services.authenticate(text, source="10.0.0.1") is services.REVOKED
    assert not services.revoke_api_token(actor=employee, token=token)


def test_the_last_use_is_noted(employee):
    token, text = make(employee)

    services.authenticate(text, source="10.9.8.7")

    token.refresh_from_db()
    assert token.last_used_from == "10.9.8.7"
    assert token.last_used_at is not None


def test_deactivating_the_user_revokes_all_their_tokens(employee, admin_user):
    _, first = make(employee, name="one")
    _, second = make(employee, name="two")

    accounts_services.deactivate_user(actor=admin_user, user=employee)

    assert services.authenticate(first, source="10.0.0.1") is services.REVOKED
    assert services.authenticate(second, source="10.0.0.1") is services.REVOKED
    reasons = AuditEvent.objects.filter(action="token.revoked").values_list(
        "details__reason", flat=True
    )
    assert list(reasons) == ["user_deactivated", "user_deactivated"]


def test_resetting_the_second_factor_revokes_all_their_tokens(employee, admin_user):
    _, text = make(employee)

    accounts_services.reset_two_factor(actor=admin_user, user=employee, reason="lost phone")

    assert services.authenticate(text, source="10.0.0.1") is services.REVOKED


def test_the_command_prints_the_token_last_and_it_works(employee):
    enrol_totp(employee)
    out = StringIO()

    call_command(
        "create_api_token", employee.username, "--name", "ci", "--scopes", "chat", stdout=out
    )

    text = out.getvalue().strip().splitlines()[-1]
    token = services.authenticate(text, source="10.0.0.1")
    assert isinstance(token, ApiToken)
    assert token.scope_list == ["chat"]


def test_the_command_refuses_a_user_without_a_second_factor(employee):
    with pytest.raises(CommandError, match="two-step verification"):
        call_command("create_api_token", employee.username, "--name", "ci", stdout=StringIO())


def test_the_revoke_command_revokes_by_name(employee):
    _, text = make(employee, name="ci")

    call_command("revoke_api_token", employee.username, "ci", stdout=StringIO())

    assert services.authenticate(text, source="10.0.0.1") is services.REVOKED
    with pytest.raises(CommandError, match="no live token named 'ci'"):
        call_command("revoke_api_token", employee.username, "ci", stdout=StringIO())


def test_erasing_the_user_deletes_their_tokens(employee, admin_user):
    from accounts.erasure import erase_user

    _, text = make(employee)

    erased = erase_user(actor=admin_user, user=employee, reason="request to be forgotten")

    assert erased["api_tokens"] == 1
    assert not ApiToken.objects.filter(user=employee).exists()
    assert services.authenticate(text, source="10.0.0.1") is services.UNKNOWN
