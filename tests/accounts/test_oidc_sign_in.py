"""Company sign-in through a real OpenID Connect provider (django-oauth-toolkit, its own
process over TLS): a signed ID token, roles from the groups claim, the second factor, and
refusals for a wrong audience, a replayed nonce or callback, and an unmapped person."""

import json
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts import directory, roles
from accounts.directory_config import oidc_settings
from accounts.models import DirectoryAccount
from audit.models import AuditEvent
from tests.support.certificates import write_test_ca
from tests.support.oidc import ThrowawayProvider
from tests.support.personas import PASSWORD, make_employee
from tests.support.server import REPO

pytestmark = [pytest.mark.system, pytest.mark.django_db]

OFFICE = "10.20.0.1"


def person(username, groups, **claims):
    return {
        "password": f"{username}'s provider password",
        "claims": {
            "preferred_username": username,
            "email": f"{username}@corp.example",
            "given_name": username.title(),
            "groups": groups,
            **claims,
        },
    }


PEOPLE = {
    "olivia": person("olivia", ["chat-users"], amr=["pwd"]),
    "max": person("max", ["chat-users", "chat-admins"], amr=["pwd", "mfa"]),
    "ada": person("ada", ["chat-users"], acr="urn:corp:mfa"),
    "nils": person("nils", ["canteen"]),
    # The provider puts another client's name in wanda's ID token.
    "wanda": person("wanda", ["chat-users"], aud="another-client"),
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    server = ThrowawayProvider(tmp_path_factory.mktemp("provider"), PEOPLE)
    server.start()
    yield server
    server.stop()


def use_oidc(settings, **env):
    for name, value in oidc_settings(REPO, environ=env).items():
        setattr(settings, name, value)
    if "accounts.oidc.OIDCBackend" not in settings.AUTHENTICATION_BACKENDS:
        settings.AUTHENTICATION_BACKENDS = [
            *settings.AUTHENTICATION_BACKENDS,
            "accounts.oidc.OIDCBackend",
        ]


@pytest.fixture
def oidc(settings, provider):
    use_oidc(settings, **provider.env())
    return provider


def get(client, url):
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    return client.get(path, REMOTE_ADDR=OFFICE, secure=True)


def start(client) -> str:
    response = get(client, "/accounts/oidc/start/")
    assert response.status_code == 302, response.content
    return response["Location"]


def sign_in(provider, username, client=None):
    """The whole round trip; returns the site's answer to the provider's redirect."""
    client = client or Client()
    callback = provider.sign_in_at_provider(username, start(client))
    return client, get(client, callback)


def refusals():
    return [e.details["reason"] for e in AuditEvent.objects.filter(action="oidc.refused")]


def login_page_text(client) -> str:
    return get(client, "/accounts/login/").content.decode()


def test_the_sign_in_page_offers_company_sign_in(oidc):
    assert "Sign in with Corp sign-in" in login_page_text(Client())


def test_the_authorisation_request_uses_pkce_and_a_nonce(oidc):
    query = parse_qs(urlsplit(start(Client())).query)

    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert len(query["nonce"][0]) >= 32


def test_an_employee_signs_in_and_still_needs_the_authenticator_code(oidc):
    client, answer = sign_in(oidc, "olivia")

    assert answer.status_code == 302
    assert get(client, "/")["Location"].startswith("/accounts/enrol/")
    olivia = get_user_model().objects.get(username="olivia")
    assert not olivia.has_usable_password()
    assert olivia.email == "olivia@corp.example"
    assert olivia.directory_account.source == DirectoryAccount.Source.OIDC
    assert set(olivia.groups.values_list("name", flat=True)) == {roles.EMPLOYEES}
    assert AuditEvent.objects.filter(action="login.success").last().details["backend"] == "oidc"
    assert AuditEvent.objects.filter(action="directory.user_created").count() == 1


def test_the_providers_mfa_is_not_trusted_unless_the_site_says_so(oidc):
    client, _ = sign_in(oidc, "max")

    assert get(client, "/")["Location"].startswith("/accounts/enrol/")


def test_with_trust_on_an_amr_of_mfa_is_the_second_factor(settings, oidc):
    use_oidc(settings, **oidc.env(OIDC_TRUST_IDP_MFA="true"))

    client, _ = sign_in(oidc, "max")

    assert get(client, "/").status_code == 200
    maxi = get_user_model().objects.get(username="max")
    assert maxi.is_staff
    assert {roles.EMPLOYEES, roles.ADMINS} <= set(maxi.groups.values_list("name", flat=True))
    otp = AuditEvent.objects.filter(action="otp.success").last()
    assert otp.details["device"] == "identity_provider"


def test_with_trust_on_a_configured_acr_is_the_second_factor(settings, oidc):
    use_oidc(settings, **oidc.env(OIDC_TRUST_IDP_MFA="true", OIDC_MFA_ACR_VALUES="urn:corp:mfa"))

    client, _ = sign_in(oidc, "ada")

    assert get(client, "/").status_code == 200


def test_with_trust_on_a_password_only_sign_in_still_needs_the_code(settings, oidc):
    use_oidc(settings, **oidc.env(OIDC_TRUST_IDP_MFA="true"))

    client, _ = sign_in(oidc, "olivia")

    assert get(client, "/")["Location"].startswith("/accounts/enrol/")


def test_an_id_token_for_another_client_is_refused(oidc):
    client, answer = sign_in(oidc, "wanda")

    assert answer["Location"] == "/accounts/login/"
    assert refusals() == ["audience"]
    assert not get_user_model().objects.filter(username="wanda").exists()
    assert "Company sign-in did not work" in login_page_text(client)


def test_an_id_token_carrying_an_earlier_sign_ins_nonce_is_refused(oidc):
    first = start(Client())
    earlier_nonce = parse_qs(urlsplit(first).query)["nonce"][0]
    oidc.sign_in_at_provider("olivia", first)
    client = Client()
    second = urlsplit(start(client))
    query = {key: values[0] for key, values in parse_qs(second.query).items()}
    query["nonce"] = earlier_nonce  # as a replayed or injected authorisation request would
    tampered = urlunsplit(second._replace(query=urlencode(query)))

    answer = get(client, oidc.sign_in_at_provider("olivia", tampered))

    assert answer["Location"] == "/accounts/login/"
    assert refusals() == ["nonce"]
    assert not get_user_model().objects.filter(username="olivia").exists()


def test_a_callback_used_once_cannot_be_used_again(oidc):
    client = Client()
    callback = oidc.sign_in_at_provider("olivia", start(client))
    assert get(client, callback).status_code == 302

    again = get(Client(), callback)

    assert again["Location"] == "/accounts/login/"
    assert refusals() == ["state"]


def test_someone_with_no_mapped_role_is_refused_with_a_sentence(oidc):
    client, answer = sign_in(oidc, "nils")

    assert answer["Location"] == "/accounts/login/"
    assert refusals() == ["no_role"]
    assert "not in a group that may use this chat" in login_page_text(client)
    assert not get_user_model().objects.filter(username="nils").exists()


def test_a_local_account_of_the_same_name_is_never_taken_over(oidc):
    make_employee("olivia")

    client, answer = sign_in(oidc, "olivia")

    assert answer["Location"] == "/accounts/login/"
    assert refusals() == ["username_taken"]
    assert not DirectoryAccount.objects.exists()
    assert "_auth_user_id" not in client.session


def test_a_provider_whose_certificate_is_from_another_ca_is_refused(settings, oidc, tmp_path):
    other_ca, _, _ = write_test_ca(tmp_path, ["127.0.0.1"])
    use_oidc(settings, **oidc.env(OIDC_CA_FILE=str(other_ca)))
    client = Client()

    response = get(client, "/accounts/oidc/start/")

    assert response["Location"] == "/accounts/login/"
    assert refusals() == ["provider_unavailable"]
    assert "cannot be reached just now" in login_page_text(client)


def health():
    return json.loads(Client().get("/healthz", REMOTE_ADDR="127.0.0.1", secure=True).content)


def test_healthz_shows_the_provider_going_away_and_local_accounts_still_sign_in(oidc, monkeypatch):
    monkeypatch.setattr(directory, "STATUS_MAX_AGE_SECONDS", 0)
    make_employee("alice")
    assert health()["checks"]["identity_provider"]["ok"] is True

    oidc.stop()
    try:
        during = health()
        local = Client().post(
            "/accounts/login/",
            {"username": "alice", "password": PASSWORD},
            REMOTE_ADDR=OFFICE,
            secure=True,
        )
    finally:
        oidc.start()

    assert during["checks"]["identity_provider"]["ok"] is False
    assert during["status"] != "ok"
    assert local.status_code == 302
    assert health()["checks"]["identity_provider"]["ok"] is True
