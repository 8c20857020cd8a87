"""Tokens and usage in the admin for the Admins role (not only superusers): everyone's tokens
listed and revoked (audited), usage shown; employees and Compliance see none of it. The role's
permissions come from api.apps and documents.apps (accounts.roles.add_role_permissions)."""

import pytest
from django.contrib.auth.models import Group, Permission

from accounts.apps import _ensure_roles
from accounts.roles import ADMINS, EMPLOYEES, ensure_roles, may_manage
from api import services
from api.models import ApiToken
from audit.models import AuditEvent
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

IP = "10.0.0.9"
TOKENS = "/admin/api/apitoken/"
USAGE = "/admin/api/apiusage/"

ADDED_TO_ADMINS = {
    "api.view_apitoken",
    "api.change_apitoken",
    "api.view_apiusage",
    *(
        f"documents.{action}_{model}"
        for model in ("collection", "collectiongrant")
        for action in ("add", "change", "delete", "view")
    ),
}


def _get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def _post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def permissions_of(name: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=name).permissions.select_related("content_type")
    }


@pytest.fixture
def employees_token(employee):
    token, _ = services.create_api_token(actor=employee, user=employee, name="notebook")
    services.record_call(
        token=token,
        endpoint="chat.completions",
        model_name="SmolLM2-135M-Instruct",
        prompt_tokens=31,
        completion_tokens=7,
        duration_ms=120,
    )
    return token


def test_migrating_a_fresh_database_gives_admins_the_permissions_of_the_apps_above(db):
    # The test database was made by migrate: accounts' data migration ran before the api
    # and documents tables existed; their own migrations gave the rest, so post_migrate had
    # nothing to put right (and recorded nothing).
    assert permissions_of(ADMINS) >= ADDED_TO_ADMINS
    assert "auth.change_user" in permissions_of(ADMINS)
    assert not any(p.startswith(("api.", "documents.")) for p in permissions_of(EMPLOYEES))
    assert not AuditEvent.objects.exists()


def test_roles_wait_for_permissions_not_created_yet_and_post_migrate_gives_them(db):
    Permission.objects.filter(content_type__app_label="api", codename="view_apiusage").delete()

    with pytest.raises(Permission.DoesNotExist):
        ensure_roles(Group, Permission)
    ensure_roles(Group, Permission, missing_ok=True)
    assert "api.view_apiusage" not in permissions_of(ADMINS)
    assert ADDED_TO_ADMINS - {"api.view_apiusage"} <= permissions_of(ADMINS)
    _ensure_roles(sender=None)

    assert permissions_of(ADMINS) >= ADDED_TO_ADMINS


def test_a_member_of_admins_lists_everyones_tokens(client, group_admin, employees_token):
    assert not group_admin.is_superuser
    login_2fa(client, group_admin)

    listed = _get(client, TOKENS)
    opened = _get(client, f"{TOKENS}{employees_token.pk}/change/")

    assert listed.status_code == 200
    assert employees_token.prefix.encode() in listed.content
    assert b"alice" in listed.content
    assert opened.status_code == 200
    assert b'name="_save"' not in opened.content  # read-only: revoking is the only change


def test_a_member_of_admins_revokes_a_token_and_it_is_audited(client, group_admin, employees_token):
    login_2fa(client, group_admin)

    response = _post(
        client,
        TOKENS,
        {"action": "revoke", "_selected_action": [employees_token.pk], "index": 0},
    )

    assert response.status_code == 302
    employees_token.refresh_from_db()
    assert employees_token.state == "revoked"
    event = AuditEvent.objects.get(action="token.revoked")
    assert event.actor_id == group_admin.pk
    assert event.details["reason"] == "by_admin"


def test_a_member_of_admins_sees_the_usage(client, group_admin, employees_token):
    login_2fa(client, group_admin)

    response = _get(client, USAGE)

    assert response.status_code == 200
    page = response.content.decode()
    assert "SmolLM2-135M-Instruct" in page
    assert ">38<" in page  # 31 prompt + 7 completion tokens


def test_an_employee_sees_no_tokens_and_revokes_none(client, employee, employees_token):
    login_2fa(client, employee)

    listed = _get(client, TOKENS)
    _post(client, TOKENS, {"action": "revoke", "_selected_action": [employees_token.pk]})
    usage = _get(client, USAGE)

    assert listed.status_code in (302, 403)
    assert employees_token.prefix.encode() not in listed.content
    assert usage.status_code in (302, 403)
    assert ApiToken.objects.get(pk=employees_token.pk).state == "active"
    assert not AuditEvent.objects.filter(action="token.revoked").exists()


def test_compliance_staff_see_no_tokens(client, compliance_officer, employees_token):
    login_2fa(client, compliance_officer)

    assert _get(client, TOKENS).status_code == 403
    assert _get(client, USAGE).status_code == 403


def test_admins_still_manage_only_accounts_with_no_more_rights_than_theirs(
    group_admin, employee, compliance_officer, admin_user
):
    other_admin = type(group_admin).objects.create_user("ada", is_staff=True)
    other_admin.groups.add(Group.objects.get(name=ADMINS))

    assert may_manage(group_admin, employee)
    assert may_manage(group_admin, other_admin)
    assert not may_manage(group_admin, compliance_officer)
    assert not may_manage(group_admin, admin_user)
