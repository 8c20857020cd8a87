"""Signing in with a company directory account, against a real OpenLDAP server (slapd) on
loopback with LDAPS and a test CA: roles from nested groups, refusals, the second factor,
the directory going away and coming back, and TLS that is never downgraded."""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts import roles
from accounts.directory_config import ldap_settings
from accounts.models import DirectoryAccount
from audit.models import AuditEvent
from tests.support.certificates import write_test_ca
from tests.support.personas import (
    PASSWORD,
    enrol_totp,
    login_2fa,
    make_admin,
    make_employee,
    totp_code,
)
from tests.support.server import REPO
from tests.support.slapd import (
    GROUPS,
    PEOPLE,
    PEOPLE_PASSWORDS,
    ThrowawaySlapd,
)

pytestmark = [pytest.mark.system, pytest.mark.django_db]

OFFICE = "10.20.0.1"  # the address a whole office reaches the site from (one proxy)
DIRECTORY_DOWN = "The company directory cannot be reached just now"
NO_ROLE = "not in a group that may use this chat"
WRONG_PASSWORD = "Please enter a correct username and password"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    server = ThrowawaySlapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


def use_directory(settings, **env):
    for name, value in ldap_settings(REPO, environ=env).items():
        setattr(settings, name, value)
    if "accounts.directory.DirectoryBackend" not in settings.AUTHENTICATION_BACKENDS:
        settings.AUTHENTICATION_BACKENDS = [
            *settings.AUTHENTICATION_BACKENDS,
            "accounts.directory.DirectoryBackend",
        ]


@pytest.fixture
def directory(settings, slapd):
    if slapd.process.poll() is not None:
        slapd.start()
    use_directory(settings, **slapd.env())
    return slapd


def sign_in(client, username, password, address=OFFICE):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        secure=True,
    )


def page_text(response) -> str:
    return response.content.decode()


def role_groups(username) -> set[str]:
    user = get_user_model().objects.get(username=username)
    return set(user.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def test_an_employee_in_a_nested_group_signs_in_and_is_asked_to_set_up_a_second_factor(
    directory,
):
    client = Client()
    response = sign_in(client, "dora", PEOPLE_PASSWORDS["dora"])

    assert response.status_code == 302
    assert response["Location"] == "/accounts/enrol/"
    dora = get_user_model().objects.get(username="dora")
    assert (dora.first_name, dora.last_name, dora.email) == ("Dora", "Diaz", "dora@corp.example")
    assert not dora.has_usable_password()
    assert role_groups("dora") == {roles.EMPLOYEES}
    assert not dora.is_staff
    assert dora.directory_account.subject == f"uid=dora,{PEOPLE}".lower()
    # The directory password alone reaches nothing.
    assert client.get("/", REMOTE_ADDR=OFFICE, secure=True)["Location"].startswith(
        "/accounts/enrol/"
    )
    created = events("directory.user_created")
    assert [e.details["role_groups"] for e in created] == [[roles.EMPLOYEES]]
    assert events("login.success")[-1].details["backend"] == "ldap"


def test_the_full_sign_in_with_the_authenticator_code_reaches_the_chat(directory):
    sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])
    device = enrol_totp(get_user_model().objects.get(username="dora"))
    client = Client()

    step_one = sign_in(client, "dora", PEOPLE_PASSWORDS["dora"])
    assert step_one["Location"] == "/accounts/verify/"
    step_two = client.post(
        "/accounts/verify/", {"code": totp_code(device)}, REMOTE_ADDR=OFFICE, secure=True
    )

    assert step_two["Location"] == "/"
    assert client.get("/", REMOTE_ADDR=OFFICE, secure=True).status_code == 200


def test_roles_follow_nesting_two_levels_deep_and_several_groups(directory):
    sign_in(Client(), "fred", PEOPLE_PASSWORDS["fred"])
    sign_in(Client(), "eve", PEOPLE_PASSWORDS["eve"])

    assert role_groups("fred") == {roles.ADMINS}
    assert role_groups("eve") == {roles.EMPLOYEES, roles.COMPLIANCE}
    assert get_user_model().objects.get(username="fred").is_staff
    assert get_user_model().objects.get(username="eve").is_staff


def test_roles_are_read_again_at_every_sign_in(directory):
    sign_in(Client(), "eve", PEOPLE_PASSWORDS["eve"])

    # A group of names needs a member: eve's place goes to someone else meanwhile.
    def members(dn):
        return (
            f"dn: cn=chat-compliance,{GROUPS}\nchangetype: modify\nreplace: member\nmember: {dn}\n"
        )

    leave, rejoin = members(f"uid=gina,{PEOPLE}"), members(f"uid=eve,{PEOPLE}")
    directory.modify(leave)
    try:
        response = sign_in(Client(), "eve", PEOPLE_PASSWORDS["eve"])
    finally:
        directory.modify(rejoin)

    assert response.status_code == 302
    assert role_groups("eve") == {roles.EMPLOYEES}
    assert not get_user_model().objects.get(username="eve").is_staff
    (changed,) = events("directory.roles_changed")
    assert changed.details["role_groups_before"] == sorted([roles.COMPLIANCE, roles.EMPLOYEES])
    assert changed.details["role_groups_after"] == [roles.EMPLOYEES]


def test_someone_in_no_mapped_group_is_refused_with_a_sentence_and_no_account(directory):
    response = sign_in(Client(), "gina", PEOPLE_PASSWORDS["gina"])

    assert response.status_code == 200
    assert NO_ROLE in page_text(response)
    assert not get_user_model().objects.filter(username="gina").exists()
    failure = events("login.failure")[-1]
    assert failure.details == {"username_tried": "gina", "backend": "ldap", "reason": "no_role"}


def test_a_disabled_directory_account_cannot_sign_in(directory):
    response = sign_in(Client(), "hal", PEOPLE_PASSWORDS["hal"])

    assert WRONG_PASSWORD in page_text(response)
    assert not get_user_model().objects.filter(username="hal").exists()


def test_a_wrong_directory_password_is_refused_and_recorded(directory):
    response = sign_in(Client(), "dora", "not dora's password")

    assert WRONG_PASSWORD in page_text(response)
    assert events("login.failure")[-1].details == {
        "username_tried": "dora",
        "backend": "ldap",
        "reason": "password_refused",
    }


def test_a_local_account_with_a_directory_name_keeps_its_own_password(directory):
    make_employee("dora")

    refused = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])
    accepted = sign_in(Client(), "dora", PASSWORD)

    assert WRONG_PASSWORD in page_text(refused)
    assert accepted.status_code == 302
    assert not DirectoryAccount.objects.exists()
    assert events("login.success")[-1].details["backend"] == "local"


def test_starttls_on_the_plain_port_works_too(settings, directory):
    use_directory(
        settings,
        **directory.env(AUTH_LDAP_SERVER_URI=directory.starttls_uri, AUTH_LDAP_START_TLS="true"),
    )

    assert sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"]).status_code == 302


def test_one_wrong_password_does_not_lock_out_colleagues_behind_the_same_proxy(directory):
    for _ in range(5):
        sign_in(Client(), "dora", "not dora's password")

    locked = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])
    colleague = sign_in(Client(), "eve", PEOPLE_PASSWORDS["eve"])
    from_home = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"], address="10.30.0.7")

    assert locked.status_code == 429
    assert colleague.status_code == 302
    assert from_home.status_code == 302


def scrape_directory_up() -> float:
    body = Client().get("/metrics", REMOTE_ADDR="127.0.0.1", secure=True).content.decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "llmchat_directory_up" and sample.labels == {"source": "ldap"}:
                return sample.value
    raise AssertionError("llmchat_directory_up{source=ldap} is not in /metrics")


def health():
    response = Client().get("/healthz", REMOTE_ADDR="127.0.0.1", secure=True)
    return json.loads(response.content)


def test_with_the_directory_stopped_local_users_sign_in_and_directory_users_are_told(
    settings, directory, caplog
):
    from accounts.directory import DIRECTORY_UP, _ldap_up

    DIRECTORY_UP.labels("ldap").set_function(_ldap_up)
    make_employee("alice")
    assert sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"]).status_code == 302
    assert health()["checks"]["directory"]["ok"] is True
    assert scrape_directory_up() == 1

    directory.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="accounts.directory"):
            refused = [sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"]) for _ in range(6)]
        local = sign_in(Client(), "alice", PASSWORD)
        during = health()
        up_during = scrape_directory_up()
    finally:
        directory.start()

    assert all(DIRECTORY_DOWN in page_text(response) for response in refused)
    assert local.status_code == 302
    assert during["status"] != "ok"
    assert during["checks"]["directory"]["ok"] is False
    assert "contact LDAP server" in during["checks"]["directory"]["error"]
    assert up_during == 0
    assert "local accounts still can" in caplog.text
    assert events("login.failure")[-1].details["reason"] == "directory_unavailable"
    # Six refusals while it was down counted as no wrong password: no lockout.
    assert sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"]).status_code == 302
    assert health()["checks"]["directory"]["ok"] is True


def test_a_certificate_from_another_ca_is_refused_and_logged(settings, directory, tmp_path, caplog):
    other_ca, _, _ = write_test_ca(tmp_path, ["127.0.0.1"])
    use_directory(settings, **directory.env(AUTH_LDAP_CA_FILE=str(other_ca)))

    with caplog.at_level(logging.ERROR, logger="accounts.directory"):
        response = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])

    assert DIRECTORY_DOWN in page_text(response)
    assert not get_user_model().objects.filter(username="dora").exists()
    assert "refused or did not answer" in caplog.text


def test_a_certificate_for_another_host_is_refused(settings, tmp_path):
    elsewhere = ThrowawaySlapd(tmp_path, hosts=("ldap.elsewhere.example",))
    elsewhere.start()
    try:
        use_directory(settings, **elsewhere.env())
        response = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])
    finally:
        elsewhere.stop()

    assert DIRECTORY_DOWN in page_text(response)
    assert not get_user_model().objects.filter(username="dora").exists()


def test_the_admin_shows_where_a_directory_account_comes_from(directory):
    sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])
    dora = get_user_model().objects.get(username="dora")
    admin_client = Client()
    login_2fa(admin_client, make_admin())

    page = admin_client.get(
        f"/admin/auth/user/{dora.pk}/change/", REMOTE_ADDR=OFFICE, secure=True
    ).content.decode()

    assert "company directory account" in page.lower()
    assert f"uid=dora,{PEOPLE}".lower() in page
