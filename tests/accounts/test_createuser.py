import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def createuser(*args, stdin=""):
    out = io.StringIO()
    import sys

    original = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("createuser", *args, stdout=out)
    finally:
        sys.stdin = original
    return out.getvalue()


def test_it_creates_an_employee_with_the_password_from_stdin():
    output = createuser(
        "erin",
        "--email",
        "erin@corp.example",
        "--password-stdin",
        stdin="a long enough passphrase 1\n",
    )

    user = User.objects.get(username="erin")
    assert user.check_password("a long enough passphrase 1")
    assert user.email == "erin@corp.example"
    assert not user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["Employees"]
    assert "Password:" not in output
    assert AuditEvent.objects.filter(action="user.created").exists()


def test_an_admin_is_staff_in_admins():
    createuser("root2", "--admin", "--password-stdin", stdin="a long enough passphrase 2\n")

    user = User.objects.get(username="root2")
    assert user.is_staff
    assert set(user.groups.values_list("name", flat=True)) == {"Employees", "Admins"}


def test_a_compliance_officer_is_staff_in_compliance():
    createuser("cleo", "--compliance", "--password-stdin", stdin="a long enough passphrase 3\n")

    user = User.objects.get(username="cleo")
    assert user.is_staff
    assert user.has_perm("audit.view_auditevent")
    assert not user.has_perm("auth.view_user")


def test_a_weak_password_is_refused_with_the_reason():
    with pytest.raises(CommandError, match="too short"):
        createuser("weak", "--password-stdin", stdin="short\n")

    assert not User.objects.filter(username="weak").exists()


def test_without_stdin_a_password_is_generated_and_shown_once():
    output = createuser("gen")

    password = output.split("Password: ")[1].split()[0]
    assert User.objects.get(username="gen").check_password(password)


def test_if_no_users_creates_the_first_admin_only_once():
    first = createuser("admin", "--admin", "--if-no-users")
    second = createuser("admin", "--admin", "--if-no-users")

    assert "Created admin" in first
    assert second == ""
    assert User.objects.count() == 1


def test_an_existing_username_is_refused():
    createuser("dup")
    with pytest.raises(CommandError, match="already exists"):
        createuser("dup")


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("two words", "may contain only letters, numbers, and @/./+/-/_"),
        ("<script>", "may contain only letters, numbers, and @/./+/-/_"),
        ("a" * 200, "at most 150 characters"),
        ("\u202eadmin", "U+202E"),
        ("bob\u2066", "U+2066"),
        ("nul\x00byte", "U+0000"),
        ("zero\u200bwidth", "U+200B"),
    ],
)
def test_a_username_the_admin_form_refuses_is_refused_with_the_reason(username, reason):
    with pytest.raises(CommandError, match=re.escape(reason)) as refused:
        createuser(username, "--password-stdin", stdin="a long enough passphrase 4\n")

    assert "refused" in str(refused.value) or "type it again" in str(refused.value)
    assert User.objects.count() == 0
    assert not AuditEvent.objects.filter(action="user.created").exists()


def test_a_username_differing_only_in_case_is_refused_as_the_admin_form_does():
    createuser("dana")

    with pytest.raises(CommandError, match="already exists"):
        createuser("Dana")

    assert list(User.objects.values_list("username", flat=True)) == ["dana"]


def test_a_username_is_stored_unicode_normalised_as_the_admin_form_stores_it():
    createuser("\uff45rin", "--password-stdin", stdin="a long enough passphrase 5\n")

    assert User.objects.filter(username="erin").exists()
