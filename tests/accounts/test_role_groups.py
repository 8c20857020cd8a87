"""Role groups keep the permissions accounts/roles.py gives them, whoever tries otherwise and
from wherever (admin, shell, the reverse relation); each attempt is recorded."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from accounts.apps import roles_as_written
from accounts.roles import ROLES
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def permissions_of(name: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=name).permissions.select_related("content_type")
    }


def as_written(name: str) -> set[str]:
    return {f"{app}.{codename}" for app, codename in ROLES[name]}


@pytest.fixture
def audit_view():
    return Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")


def refusals():
    return list(AuditEvent.objects.filter(action="group.change_refused").order_by("sequence"))


def test_giving_admins_the_audit_permission_from_a_shell_is_refused_and_recorded(audit_view):
    admins = Group.objects.get(name="Admins")

    admins.permissions.add(audit_view)

    assert permissions_of("Admins") == as_written("Admins")
    (refused,) = refusals()
    assert refused.outcome == "denied"
    assert refused.target == f"auth.group:{admins.pk}"
    assert refused.details["group"] == "Admins"
    assert refused.details["operation"] == "add"
    assert refused.details["permissions"] == ["audit.view_auditevent"]


def test_adding_the_group_to_the_permission_is_refused_too(audit_view):
    audit_view.group_set.add(Group.objects.get(name="Admins"), Group.objects.create(name="Own"))

    assert permissions_of("Admins") == as_written("Admins")
    assert permissions_of("Own") == {"audit.view_auditevent"}
    assert [e.details["group"] for e in refusals()] == ["Admins"]


def test_removing_or_clearing_compliance_permissions_is_refused(audit_view):
    compliance = Group.objects.get(name="Compliance")

    compliance.permissions.remove(audit_view)
    compliance.permissions.clear()
    audit_view.group_set.clear()
    compliance.permissions.set([])

    assert permissions_of("Compliance") == {"audit.view_auditevent"}
    assert [e.details["operation"] for e in refusals()] == ["remove", "clear", "clear", "remove"]


def test_groups_of_the_organisations_own_change_freely(audit_view):
    own = Group.objects.create(name="Auditors in training")

    own.permissions.add(audit_view)
    own.permissions.clear()

    assert permissions_of("Auditors in training") == set()
    assert refusals() == []


@pytest.mark.django_db(transaction=True)
def test_the_refusal_is_committed_with_the_change_it_refused(audit_view):
    """Refusing by raising would roll back the event with the change; the refusal is
    recorded in a transaction that commits."""
    Group.objects.get(name="Admins").permissions.add(audit_view)

    with transaction.atomic():
        assert permissions_of("Admins") == as_written("Admins")
        assert [e.details["group"] for e in refusals()] == ["Admins"]


def test_a_change_made_around_the_orm_is_put_back_at_start_up(audit_view):
    admins = Group.objects.get(name="Admins")
    through = Group.permissions.through
    through.objects.bulk_create([through(group_id=admins.pk, permission_id=audit_view.pk)])
    assert "audit.view_auditevent" in permissions_of("Admins")

    warnings = roles_as_written()

    assert [w.id for w in warnings] == ["accounts.W001"]
    assert permissions_of("Admins") == as_written("Admins")
    assert roles_as_written() == []
