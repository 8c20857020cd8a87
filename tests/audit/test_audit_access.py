"""Only members of Compliance read the audit log; a permission an admin can grant is not
enough, and a superuser must join Compliance first (which is recorded). Employees who open
the admin are told it is not for them, and that is recorded."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from audit.log import PROBES_AUDITED_PER_MINUTE, record
from audit.models import AuditEvent
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

LIST = "/admin/audit/auditevent/"


def get(client, path, ip="10.0.0.21"):
    return client.get(path, REMOTE_ADDR=ip, secure=True)


def audit_pages() -> list[str]:
    event = record("conversation.renamed")
    return [LIST, f"{LIST}{event.pk}/change/", f"{LIST}export/csv/", f"{LIST}verify/"]


def test_a_superuser_outside_compliance_cannot_read_the_audit_log(admin_client_secure):
    pages = audit_pages()

    statuses = [get(admin_client_secure, path).status_code for path in pages]
    index = get(admin_client_secure, "/admin/")

    assert statuses == [403, 403, 403, 403]
    assert "audit" not in {app["app_label"] for app in index.context["app_list"]}
    assert not AuditEvent.objects.filter(action__in=["audit.viewed", "audit.exported"]).exists()


def test_the_refusal_says_who_may_read_it(admin_client_secure):
    response = get(admin_client_secure, LIST)

    assert "Only members of the Compliance group can read the audit log" in (
        response.content.decode()
    )


def test_a_superuser_who_joins_compliance_reads_it_and_joining_is_recorded(
    admin_client_secure, admin_user
):
    admin_user.groups.add(Group.objects.get(name="Compliance"))

    response = get(admin_client_secure, LIST)

    assert response.status_code == 200
    joined = AuditEvent.objects.filter(action="group.changed", target=f"auth.user:{admin_user.pk}")
    assert joined.order_by("sequence").last().details == {
        "operation": "added",
        "groups": ["Compliance"],
    }


def test_an_admin_with_the_audit_permission_itself_still_cannot_read_it(group_admin):
    group_admin.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client = Client()
    login_2fa(client, group_admin)

    statuses = [get(client, path).status_code for path in audit_pages()]

    assert statuses == [403, 403, 403, 403]


def test_the_admin_index_shows_the_audit_log_only_to_compliance(group_admin, compliance_client):
    client = Client()
    login_2fa(client, group_admin)

    admins_apps = {app["app_label"] for app in get(client, "/admin/").context["app_list"]}
    compliance_apps = {
        app["app_label"] for app in get(compliance_client, "/admin/").context["app_list"]
    }

    assert "audit" not in admins_apps
    # Compliance also places legal holds (accounts.LegalHold), and sees nothing else.
    assert compliance_apps == {"audit", "accounts"}


def test_an_employee_who_opens_the_admin_is_told_where_to_go_and_it_is_recorded(employee):
    client = Client()
    login_2fa(client, employee)

    response = get(client, "/admin/auth/user/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "You may not open the administration" in page
    assert 'href="/"' in page
    denied = AuditEvent.objects.get(action="permission.denied")
    assert denied.actor_username == "alice"
    assert denied.outcome == "denied"
    assert denied.details["path"] == "/admin/auth/user/"
    assert denied.source_ip == "10.0.0.21"


def test_an_employee_opening_the_admin_again_and_again_is_recorded_at_most_20_a_minute(employee):
    client = Client()
    login_2fa(client, employee)

    statuses = {get(client, "/admin/").status_code for _ in range(PROBES_AUDITED_PER_MINUTE + 5)}

    assert statuses == {403}
    assert AuditEvent.objects.filter(action="permission.denied").count() == 20


def test_someone_not_signed_in_still_goes_to_sign_in(client):
    response = get(client, "/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not AuditEvent.objects.filter(action="permission.denied").exists()


def test_an_employee_with_only_a_password_still_goes_to_sign_in(password_only_user):
    client = Client()
    client.force_login(password_only_user)

    response = get(client, "/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/enrol/")
