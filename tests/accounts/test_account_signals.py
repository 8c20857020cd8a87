"""accounts.signals: other apps hear of a deactivation or a second-factor reset."""

import pytest

from accounts import services, signals

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    calls = []

    def receiver(sender, *, actor, user, **kwargs):
        calls.append((sender.__name__, actor.username, user.username))

    signals.user_deactivated.connect(receiver)
    signals.second_factor_reset.connect(receiver)
    yield calls
    signals.user_deactivated.disconnect(receiver)
    signals.second_factor_reset.disconnect(receiver)


def test_deactivating_a_user_sends_user_deactivated(heard, admin_user, employee):
    services.deactivate_user(actor=admin_user, user=employee)

    assert heard == [("deactivate_user", admin_user.username, employee.username)]


def test_resetting_a_second_factor_sends_second_factor_reset(heard, admin_user, employee):
    services.reset_two_factor(actor=admin_user, user=employee, reason="lost phone")

    assert heard == [("reset_two_factor", admin_user.username, employee.username)]
