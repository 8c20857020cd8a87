"""The people tests act as, and `login_2fa()`, which leaves a fully verified session.

Passwords are long so Django's validators never object.
"""

import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_otp import DEVICE_ID_SESSION_KEY

from accounts.models import TOTPDevice, authenticator_code
from accounts.services import SECOND_FACTOR_AT_KEY, create_user

PASSWORD = "correct horse battery staple 42"


def make_employee(username: str = "alice"):
    return create_user(username=username, password=PASSWORD)


def make_password_only_user(username: str = "pat"):
    """An employee who has a password but has not set up a second factor yet."""
    return create_user(username=username, password=PASSWORD)


def make_admin(username: str = "root-admin"):
    """A superuser (Admins-group members are made with make_group_admin)."""
    user = get_user_model().objects.create_superuser(
        username=username, password=PASSWORD, email=f"{username}@corp.example"
    )
    user.groups.add(Group.objects.get(name="Employees"))
    return user


def make_group_admin(username: str = "adam"):
    return create_user(username=username, password=PASSWORD, admin=True)


def make_compliance_officer(username: str = "carol"):
    return create_user(username=username, password=PASSWORD, compliance=True)


def enrol_totp(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def totp_code(device: TOTPDevice, at: float | None = None) -> str:
    """The code the user's authenticator app shows (now, or at Unix time ``at``)."""
    return authenticator_code(device.base32_key, at)


def login_2fa(client, user):
    """Sign ``user`` in on ``client`` with a confirmed authenticator app, fully verified."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or enrol_totp(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SECOND_FACTOR_AT_KEY] = time.time()
    session.save()
    return device


def let_second_factor_age(client, seconds: float) -> None:
    """Make ``client``'s second factor ``seconds`` older, as if that much time had passed
    since it was proved (for step-up, accounts.step_up)."""
    session = client.session
    session[SECOND_FACTOR_AT_KEY] -= seconds
    session.save()
