"""``manage.py sync_directory`` against a real slapd: leavers are out within one run, with
their open socket closed; nobody is touched when the directory cannot be asked."""

from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client

from accounts import roles
from accounts.management.commands import sync_directory
from accounts.websocket import CLOSE_SESSION_ENDED
from audit.models import AuditEvent
from tests.accounts.test_directory_sign_in import role_groups, sign_in, use_directory
from tests.support.personas import login_2fa
from tests.support.slapd import GROUPS, PEOPLE, PEOPLE_PASSWORDS, ThrowawaySlapd
from tests.support.websockets import communicator_for

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slapd(settings, tmp_path):
    server = ThrowawaySlapd(tmp_path)
    server.start()
    use_directory(settings, **server.env())
    yield server
    server.stop()


def signed_in(*usernames):
    for username in usernames:
        assert sign_in(Client(), username, PEOPLE_PASSWORDS[username]).status_code == 302


def user(username):
    return get_user_model().objects.get(username=username)


def disable(slapd, uid):
    slapd.modify(
        f"dn: uid={uid},{PEOPLE}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n"
    )


def deactivations():
    return {
        event.details["username"]: event.details["reason"]
        for event in AuditEvent.objects.filter(action="directory.user_deactivated")
    }


def sync(*args) -> str:
    out = StringIO()
    call_command("sync_directory", *args, stdout=out)
    return out.getvalue()


async def test_a_leaver_is_deactivated_and_their_open_socket_closes(slapd):
    await sync_to_async(signed_in)("dora", "eve")
    client = Client()
    await sync_to_async(login_2fa)(client, await sync_to_async(user)("dora"))
    communicator = communicator_for(client)
    connected, _ = await communicator.connect()
    assert connected
    await sync_to_async(disable)(slapd, "dora")

    output = await sync_to_async(sync)()

    message = await communicator.receive_output(timeout=5)
    await communicator.wait()
    await sync_to_async(connections.close_all)()
    assert message == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}
    assert "Deactivated dora: disabled." in output
    assert not (await sync_to_async(user)("dora")).is_active
    assert (await sync_to_async(user)("eve")).is_active
    assert await sync_to_async(deactivations)() == {"dora": "disabled"}


def test_deleted_and_unmapped_people_go_and_changed_roles_follow(slapd):
    signed_in("dora", "eve", "fred")
    slapd.modify(f"dn: uid=dora,{PEOPLE}\nchangetype: delete\n")
    # fred's team leaves IT, so he is in no mapped group any more; eve leaves Compliance.
    slapd.modify(
        f"dn: cn=it-ops,{GROUPS}\nchangetype: modify\nreplace: member\nmember: uid=gina,{PEOPLE}\n"
    )
    slapd.modify(
        f"dn: cn=chat-compliance,{GROUPS}\nchangetype: modify\nreplace: member\n"
        f"member: uid=gina,{PEOPLE}\n"
    )

    output = sync()

    assert deactivations() == {"dora": "deleted", "fred": "no_role"}
    assert role_groups("eve") == {roles.EMPLOYEES}
    assert user("eve").is_active and not user("eve").is_staff
    assert AuditEvent.objects.filter(action="directory.roles_changed").count() == 1
    assert "3 directory accounts: 2 deactivated, 1 with other roles" in output


def test_a_disabled_account_cannot_sign_in_before_the_next_sync(slapd):
    signed_in("dora")
    disable(slapd, "dora")

    response = sign_in(Client(), "dora", PEOPLE_PASSWORDS["dora"])

    assert response.status_code == 200
    assert user("dora").is_active  # the sync will switch it off; sign-in already refuses it


def test_with_the_directory_down_nobody_is_changed(slapd):
    signed_in("dora", "eve")
    slapd.stop()

    with pytest.raises(CommandError, match="nobody was changed"):
        sync()

    assert user("dora").is_active and user("eve").is_active
    assert deactivations() == {}


def test_a_search_base_that_finds_nobody_deactivates_nobody(settings, slapd, monkeypatch):
    signed_in("dora", "eve", "fred")
    # A base where no person lives, as after a typo in the configuration.
    use_directory(settings, **slapd.env(AUTH_LDAP_USER_SEARCH_BASE=GROUPS))
    # Three accounts are under the five any run may take: lower that floor for the test.
    monkeypatch.setattr(sync_directory, "MASS_DEACTIVATION_MINIMUM", 1)

    with pytest.raises(CommandError, match="Nobody was changed"):
        sync()
    assert deactivations() == {}

    sync("--allow-mass-deactivation")
    assert set(deactivations()) == {"dora", "eve", "fred"}
