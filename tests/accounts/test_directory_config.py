"""The directory settings read from the environment, and the Active Directory group query
(no directory server needed)."""

from pathlib import Path

import ldap
import pytest
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.config import LDAPSearch

from accounts.directory import _BoundEntry
from accounts.directory_config import ActiveDirectoryInChainGroupType, ldap_settings
from tests.support.server import REPO
from tests.support.slapd import GROUPS, PEOPLE


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"AUTH_LDAP_SERVER_URI": "ldap://dc.corp.example"}, "plain text"),
        (
            {"AUTH_LDAP_SERVER_URI": "ldaps://dc.corp.example", "AUTH_LDAP_START_TLS": "true"},
            "encrypted already",
        ),
        (
            {"AUTH_LDAP_SERVER_URI": "ldaps://dc", "AUTH_LDAP_CA_FILE": "/nowhere/ca.pem"},
            "does not exist",
        ),
        ({"AUTH_LDAP_USER_FILTER": "(uid=dora)"}, "%(user)s"),
        ({"AUTH_LDAP_EMPLOYEES_GROUP": ""}, "AUTH_LDAP_EMPLOYEES_GROUP"),
    ],
)
def test_a_configuration_that_would_weaken_sign_in_stops_start_up(env, says):
    base = {
        "AUTH_LDAP_SERVER_URI": "ldaps://dc.corp.example",
        "AUTH_LDAP_USER_SEARCH_BASE": PEOPLE,
        "AUTH_LDAP_GROUP_SEARCH_BASE": GROUPS,
        "AUTH_LDAP_EMPLOYEES_GROUP": f"cn=chat-users,{GROUPS}",
    }
    with pytest.raises(ImproperlyConfigured, match=says.replace("(", r"\(").replace(")", r"\)")):
        ldap_settings(Path(REPO), environ={**base, **env})


class RecordingConnection:
    """Answers every search with ``entries`` and remembers what was asked. No Active
    Directory runs here: this checks the query the site sends one."""

    def __init__(self, entries):
        self.entries = entries
        self.searches = []

    def search_s(self, base, scope, filterstr, attrlist=None):
        self.searches.append((base, scope, filterstr))
        return self.entries


def test_active_directory_groups_come_from_one_in_chain_search_with_the_dn_escaped():
    connection = RecordingConnection([("CN=Chat Users,OU=Groups,DC=corp", {"cn": [b"Chat Users"]})])
    user = _BoundEntry("CN=Dora (Sales)*,OU=Staff,DC=corp", connection)
    search = LDAPSearch("OU=Groups,DC=corp", ldap.SCOPE_SUBTREE, "(objectClass=group)")

    groups = ActiveDirectoryInChainGroupType().user_groups(user, search)

    assert [dn for dn, _ in groups] == ["cn=chat users,ou=groups,dc=corp"]
    assert connection.searches == [
        (
            "OU=Groups,DC=corp",
            ldap.SCOPE_SUBTREE,
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:="
            "CN=Dora \\28Sales\\29\\2a,OU=Staff,DC=corp))",
        )
    ]
