"""A non-superuser admin, signed in over real HTTPS to a real `manage.py serve`, tries to
take over the superuser and to read the audit log; every attempt is refused."""

import re
import urllib.error

import pytest

from tests.support.browserless import SignedInClient
from tests.support.server import free_port, manage, served_site, site_environment

pytestmark = pytest.mark.system

ROOT_PASSWORD = "the superuser's long passphrase 1"
ADMIN_PASSWORD = "the admin's long passphrase 2"
COMPLIANCE_PASSWORD = "the compliance passphrase 3"
AUDIT_LOG = "/admin/audit/auditevent/"


def create_account(site, username: str, password: str, *flags: str) -> None:
    manage(
        "createuser",
        username,
        "--password-stdin",
        *flags,
        env=site_environment(site.var_dir),
        stdin=password + "\n",
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        manage(
            "createsuperuser",
            "--noinput",
            "--username",
            "root",
            "--email",
            "root@corp.example",
            env=site_environment(running.var_dir, DJANGO_SUPERUSER_PASSWORD=ROOT_PASSWORD),
        )
        create_account(running, "adam", ADMIN_PASSWORD, "--admin")
        create_account(running, "carol", COMPLIANCE_PASSWORD, "--compliance")
        yield running


@pytest.fixture(scope="module")
def root(site):
    return SignedInClient(site).sign_in("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def adam(site, root):
    return SignedInClient(site).sign_in("adam", ADMIN_PASSWORD)


def refused(call) -> tuple[int, str]:
    """The status and page of a request that the server answers with an error."""
    with pytest.raises(urllib.error.HTTPError) as answer:
        call()
    return answer.value.code, answer.value.read().decode()


def pk_of(page: str, path: str, name: str) -> str:
    return re.search(rf'href="{path}(\d+)/change/[^"]*">{re.escape(name)}<', page).group(1)


def test_the_superusers_password_change_page_is_refused_with_the_reason(adam):
    users = adam.get("/admin/auth/user/")
    root_pk = pk_of(users, "/admin/auth/user/", "root")

    status, page = refused(lambda: adam.get(f"/admin/auth/user/{root_pk}/password/"))
    posted, posted_page = refused(
        lambda: adam.post_form(
            f"/admin/auth/user/{root_pk}/password/",
            users,
            {"password1": "taken over 12345678", "password2": "taken over 12345678"},
        )
    )

    assert status == 403
    assert posted == 403
    assert "Only a superuser can change root: they have rights you do not." in page
    assert "Only a superuser can change root" in posted_page
    # The password still works: the superuser signs in with it in the next test.


def test_resetting_the_superusers_second_factor_is_refused(site, adam, root):
    users = adam.get("/admin/auth/user/")
    root_pk = pk_of(users, "/admin/auth/user/", "root")

    page = adam.post_form(
        "/admin/auth/user/",
        users,
        {
            "action": "reset_two_factor",
            "_selected_action": root_pk,
            "confirm": "yes",
            "reason": "taking over",
        },
    )

    assert "Skipped root: only a superuser can change them" in page
    # The superuser signs in again with the same authenticator: the device is still there.
    again = SignedInClient(site)
    again.key = root.key
    again.sign_in("root", ROOT_PASSWORD)
    assert "Administration" in again.get("/admin/")


def test_giving_admins_the_audit_permission_is_refused(adam):
    groups = adam.get("/admin/auth/group/")
    admins_pk = pk_of(groups, "/admin/auth/group/", "Admins")
    change_page = adam.get(f"/admin/auth/group/{admins_pk}/change/")

    status, page = refused(
        lambda: adam.post_form(
            f"/admin/auth/group/{admins_pk}/change/",
            change_page,
            {"name": "Admins", "permissions": "1"},
        )
    )

    assert "role group managed by the application" in change_page
    assert status == 403
    assert "role group managed by the application" in page


def test_the_admin_cannot_read_the_audit_log_and_compliance_can(site, adam):
    status, page = refused(lambda: adam.get(AUDIT_LOG))
    carol = SignedInClient(site).sign_in("carol", COMPLIANCE_PASSWORD)

    log = carol.get(AUDIT_LOG + "?action=permission.denied")

    assert status == 403
    assert "Only members of the Compliance group can read the audit log" in page
    assert "permission.denied" in log
    assert "adam" in log
