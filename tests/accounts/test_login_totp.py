"""Signing in with a password and then a code from the authenticator app."""

import time

import pytest
from django.test import Client

from accounts.models import TOTPDevice
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, enrol_totp, totp_code

pytestmark = pytest.mark.django_db

IP = "10.1.1.1"


def post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def sign_in_with_password(client, user, next_url="/"):
    response = post(
        client,
        f"/accounts/login/?next={next_url}",
        {"username": user.username, "password": PASSWORD, "next": next_url},
    )
    assert response.status_code == 302
    return response


@pytest.fixture
def enrolled(employee):
    return enrol_totp(employee)


def actions():
    return list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))


def test_the_full_sign_in_with_a_computed_code_reaches_the_page(employee, enrolled):
    client = Client()
    step_one = sign_in_with_password(client, employee, "/accounts/")
    assert step_one["Location"] == "/accounts/verify/?next=/accounts/"

    step_two = post(
        client, "/accounts/verify/", {"code": totp_code(enrolled), "next": "/accounts/"}
    )

    assert step_two.status_code == 302
    assert step_two["Location"] == "/accounts/"
    assert get(client, "/accounts/").status_code == 200
    assert actions()[-2:] == ["login.success", "otp.success"]


def test_the_session_key_changes_at_each_step(employee, enrolled):
    client = Client()
    # A session that exists before sign-in (as a planted one would): it must not survive.
    before = client.session.session_key
    get(client, "/accounts/login/")
    sign_in_with_password(client, employee)
    after_password = client.cookies["__Host-session"].value
    post(client, "/accounts/verify/", {"code": totp_code(enrolled)})
    after_code = client.cookies["__Host-session"].value

    assert before is not None
    assert before != after_password
    assert after_password != after_code


def test_a_wrong_code_is_refused_with_a_message_and_recorded(employee, enrolled):
    client = Client()
    sign_in_with_password(client, employee)
    wrong = f"{(int(totp_code(enrolled)) + 1) % 1_000_000:06d}"

    response = post(client, "/accounts/verify/", {"code": wrong})

    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert get(client, "/accounts/").status_code == 302
    event = AuditEvent.objects.get(action="otp.failure")
    assert (event.outcome, event.source_ip, event.target) == (
        "failure",
        IP,
        f"auth.user:{employee.pk}",
    )


def test_a_replayed_code_is_refused(employee, enrolled):
    code = totp_code(enrolled)
    first = Client()
    sign_in_with_password(first, employee)
    assert post(first, "/accounts/verify/", {"code": code}).status_code == 302

    second = Client()
    sign_in_with_password(second, employee)
    replay = post(second, "/accounts/verify/", {"code": code})

    assert replay.status_code == 400
    assert get(second, "/accounts/").status_code == 302


def test_wrong_codes_are_throttled_and_the_wait_is_shown(employee, enrolled):
    client = Client()
    sign_in_with_password(client, employee)
    for _ in range(3):
        post(client, "/accounts/verify/", {"code": "000000"})
    TOTPDevice.objects.filter(pk=enrolled.pk).update(throttling_failure_count=4)

    response = post(client, "/accounts/verify/", {"code": totp_code(enrolled)})

    assert response.status_code == 400
    assert b"Too many wrong codes. Wait" in response.content
    assert get(client, "/accounts/").status_code == 302
    throttled = AuditEvent.objects.filter(action="otp.throttled").last()
    assert throttled.outcome == "denied"
    assert throttled.details["wait"] >= 1


def test_the_right_code_works_once_the_wait_is_over(employee, enrolled):
    client = Client()
    sign_in_with_password(client, employee)
    post(client, "/accounts/verify/", {"code": "000000"})
    # One failure asks this session for a 1-second wait; let it pass.
    time.sleep(1.1)

    response = post(client, "/accounts/verify/", {"code": totp_code(enrolled)})

    assert response.status_code == 302


def test_unknown_usernames_and_wrong_passwords_get_the_same_message(employee):
    unknown = post(Client(), "/accounts/login/", {"username": "nobody", "password": "x" * 14})
    wrong = post(Client(), "/accounts/login/", {"username": "alice", "password": "x" * 14})

    assert unknown.status_code == wrong.status_code == 200
    message = b"Please enter a correct username and password"
    assert message in unknown.content
    assert message in wrong.content


def test_unknown_usernames_cost_a_password_hash_like_wrong_passwords(employee, monkeypatch):
    from tests.support.hashers import FastPBKDF2PasswordHasher

    calls = []
    original = FastPBKDF2PasswordHasher.encode
    monkeypatch.setattr(
        FastPBKDF2PasswordHasher,
        "encode",
        lambda self, *a, **k: calls.append(1) or original(self, *a, **k),
    )

    post(Client(), "/accounts/login/", {"username": "nobody", "password": "x" * 14})
    unknown_hashes = len(calls)
    calls.clear()
    post(Client(), "/accounts/login/", {"username": "alice", "password": "x" * 14})

    assert unknown_hashes == len(calls) == 1


def test_a_user_without_an_authenticator_is_sent_to_enrolment(password_only_user):
    client = Client()

    response = sign_in_with_password(client, password_only_user, "/accounts/")

    assert response["Location"] == "/accounts/enrol/?next=/accounts/"


def test_an_outside_next_url_is_ignored(employee, enrolled):
    client = Client()
    sign_in_with_password(client, employee)

    response = post(
        client, "/accounts/verify/", {"code": totp_code(enrolled), "next": "https://evil.example/"}
    )

    assert response["Location"] == "/"


def test_signing_out_ends_the_session(employee_client):
    assert get(employee_client, "/accounts/").status_code == 200

    post(employee_client, "/accounts/logout/", {})

    assert get(employee_client, "/accounts/").status_code == 302
    assert "logout" in actions()


def wrong_code_for(device) -> str:
    return f"{(int(totp_code(device)) + 500_000) % 1_000_000:06d}"


# A small throttle factor, so a test can wait out each wait like a patient guesser:
# 0.05 s, 0.1 s, ... 0.8 s, then 1.6 s after the sixth wrong code.
QUICK_FACTOR = 0.05


def six_patient_wrong_codes(client, device):
    for n in range(6):
        response = post(client, "/accounts/verify/", {"code": wrong_code_for(device)})
        assert b"That code is not right" in response.content
        if n < 5:
            time.sleep(QUICK_FACTOR * 2**n + 0.05)


def test_wrong_codes_in_another_session_do_not_hold_the_owner_back(employee, enrolled, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = QUICK_FACTOR
    guesser = Client()
    sign_in_with_password(guesser, employee)
    owner = Client()
    sign_in_with_password(owner, employee)
    six_patient_wrong_codes(guesser, enrolled)

    response = post(owner, "/accounts/verify/", {"code": totp_code(enrolled)})

    assert response.status_code == 302
    assert get(owner, "/accounts/").status_code == 200


def test_wrong_codes_in_one_session_make_that_session_wait(employee, enrolled, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = QUICK_FACTOR
    guesser = Client()
    sign_in_with_password(guesser, employee)
    six_patient_wrong_codes(guesser, enrolled)

    response = post(guesser, "/accounts/verify/", {"code": totp_code(enrolled)})

    assert response.status_code == 400
    assert b"Too many wrong codes. Wait" in response.content
    assert get(guesser, "/accounts/").status_code == 302
    assert AuditEvent.objects.filter(action="otp.throttled").count() == 1


def test_wrong_codes_across_many_sessions_pause_the_authenticator_for_everyone(employee, enrolled):
    for _ in range(10):
        guesser = Client()
        sign_in_with_password(guesser, employee)
        post(guesser, "/accounts/verify/", {"code": wrong_code_for(enrolled)})
    owner = Client()
    sign_in_with_password(owner, employee)

    response = post(owner, "/accounts/verify/", {"code": totp_code(enrolled)})

    assert response.status_code == 400
    assert b"Too many wrong codes. Wait" in response.content
    assert get(owner, "/accounts/").status_code == 302
    assert AuditEvent.objects.filter(action="otp.throttled").last().details["wait"] >= 500


def test_a_backup_code_still_signs_in_while_the_authenticator_is_paused(employee, enrolled):
    from accounts.services import regenerate_backup_codes

    codes = regenerate_backup_codes(actor=employee)
    for _ in range(10):
        guesser = Client()
        sign_in_with_password(guesser, employee)
        post(guesser, "/accounts/verify/", {"code": wrong_code_for(enrolled)})
    owner = Client()
    sign_in_with_password(owner, employee)

    response = post(owner, "/accounts/verify/", {"code": codes[0]})

    assert response.status_code == 302
    assert get(owner, "/accounts/").status_code == 200


def test_a_right_code_is_not_spent_when_its_sign_in_cannot_be_recorded(
    employee, enrolled, monkeypatch
):
    """Verification is one transaction: if its audit event cannot be written, the code
    is not used up and the session stays unverified, so the same code works on retry."""
    from accounts import services

    client = Client()
    sign_in_with_password(client, employee)
    code = totp_code(enrolled)
    real_record = services.record

    def audit_down(action, **kwargs):
        if action == "otp.success":
            raise RuntimeError("the audit log is not answering")
        return real_record(action, **kwargs)

    monkeypatch.setattr(services, "record", audit_down)
    client.raise_request_exception = False
    assert post(client, "/accounts/verify/", {"code": code}).status_code == 500
    enrolled.refresh_from_db()
    assert enrolled.last_t == -1

    monkeypatch.setattr(services, "record", real_record)
    assert post(client, "/accounts/verify/", {"code": code}).status_code == 302
    assert get(client, "/accounts/").status_code == 200
