"""A throwaway OpenLDAP server (Debian's slapd) of the tests' own on a free loopback port,
serving LDAPS with a certificate from a test CA, that a test may stop and start at will.

The directory it holds (``DIRECTORY``): people under ou=people, groups of names under
ou=groups with nested membership, a service account the site binds as, and one disabled
account (``employeeType: disabled``, which the site's user filter leaves out, as
Active Directory's userAccountControl rule does there).
"""

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.support.certificates import write_test_ca
from tests.support.server import free_port, stop_process
from tests.support.services import require_tool

BASE_DN = "dc=corp,dc=example"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
SERVICE_DN = f"cn=chat-service,{BASE_DN}"
SERVICE_PASSWORD = "service account password 1"
ROOT_DN = f"cn=root,{BASE_DN}"
ROOT_PASSWORD = "root-password-of-the-test-directory"
USER_FILTER = "(&(uid=%(user)s)(!(employeeType=disabled)))"

EMPLOYEES_GROUP = f"cn=chat-users,{GROUPS}"
COMPLIANCE_GROUP = f"cn=chat-compliance,{GROUPS}"
ADMINS_GROUP = f"cn=chat-admins,{GROUPS}"
START_TIMEOUT_SECONDS = 30

# uid -> (password, description)
PEOPLE_PASSWORDS = {
    "dora": "dora's directory password",  # Employees through a nested group (sales)
    "eve": "eve's directory password",  # Compliance and Employees
    "fred": "fred's directory password",  # Admins through two levels of nesting
    "gina": "gina's directory password",  # in no mapped group
    "hal": "hal's directory password",  # disabled in the directory
}


def _entry(dn: str, **attrs) -> str:
    lines = [f"dn: {dn}"]
    for name, values in attrs.items():
        for value in values if isinstance(values, list) else [values]:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n"


def _person(uid: str, given: str, surname: str, **extra) -> str:
    return _entry(
        f"uid={uid},{PEOPLE}",
        objectClass=["inetOrgPerson"],
        uid=uid,
        cn=f"{given} {surname}",
        givenName=given,
        sn=surname,
        mail=f"{uid}@corp.example",
        userPassword=PEOPLE_PASSWORDS[uid],
        **extra,
    )


def _group(name: str, *members: str) -> str:
    return _entry(
        f"cn={name},{GROUPS}", objectClass=["groupOfNames"], cn=name, member=list(members)
    )


def directory_ldif() -> str:
    """The test directory: people, a service account and nested groups."""
    person = lambda uid: f"uid={uid},{PEOPLE}"  # noqa: E731
    group = lambda name: f"cn={name},{GROUPS}"  # noqa: E731
    entries = [
        _entry(BASE_DN, objectClass=["dcObject", "organization"], dc="corp", o="Corp"),
        _entry(PEOPLE, objectClass=["organizationalUnit"], ou="people"),
        _entry(GROUPS, objectClass=["organizationalUnit"], ou="groups"),
        _entry(
            SERVICE_DN,
            objectClass=["organizationalRole", "simpleSecurityObject"],
            cn="chat-service",
            userPassword=SERVICE_PASSWORD,
        ),
        _person("dora", "Dora", "Diaz"),
        _person("eve", "Eve", "Evans"),
        _person("fred", "Fred", "Fox"),
        _person("gina", "Gina", "Gray"),
        _person("hal", "Hal", "Hill", employeeType="disabled"),
        # Nesting: dora is in sales, sales is in chat-users; fred is in it-ops, it-ops in
        # it, it in chat-admins.
        _group("sales", person("dora")),
        _group("it-ops", person("fred")),
        _group("it", group("it-ops")),
        _group("chat-users", group("sales"), person("eve"), person("hal")),
        _group("chat-compliance", person("eve")),
        _group("chat-admins", group("it")),
        _group("canteen", person("gina")),
    ]
    return "\n".join(entries)


def _sbin_tool(name: str) -> str:
    """A program of Debian's slapd package, found in /usr/sbin even where PATH lacks it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    return found or require_tool(name, "make slapd (Debian's slapd package)")


class ThrowawaySlapd:
    """slapd with an MDB database in ``directory``, LDAPS on 127.0.0.1 and plain LDAP (for
    StartTLS) on another port; the certificate names ``hosts``."""

    def __init__(self, directory: Path, hosts: tuple[str, ...] = ("127.0.0.1",)):
        self.slapd = _sbin_tool("slapd")
        self.slapadd = _sbin_tool("slapadd")
        self.directory = directory
        self.ldaps_port = free_port()
        self.ldap_port = free_port()
        self.process: subprocess.Popen | None = None
        self.ca_file, self.cert_file, self.key_file = write_test_ca(directory, list(hosts))
        self.config = directory / "slapd.conf"
        (directory / "db").mkdir()
        self.config.write_text(self._config())
        data = directory / "directory.ldif"
        data.write_text(directory_ldif())
        loaded = subprocess.run(
            [self.slapadd, "-f", str(self.config), "-l", str(data)],
            text=True,
            capture_output=True,
            check=False,
        )
        if loaded.returncode:
            raise AssertionError(f"slapadd could not load the test directory:\n{loaded.stderr}")

    # By address: libldap checks a certificate for "localhost" against the machine's own
    # host name instead.
    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def starttls_uri(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    def _config(self) -> str:
        schema = Path("/etc/ldap/schema")
        return "\n".join(
            [
                *(
                    f"include {schema / name}.schema"
                    for name in ("core", "cosine", "inetorgperson")
                ),
                f"pidfile {self.directory / 'slapd.pid'}",
                "modulepath /usr/lib/ldap",
                "moduleload back_mdb",
                f"TLSCACertificateFile {self.ca_file}",
                f"TLSCertificateFile {self.cert_file}",
                f"TLSCertificateKeyFile {self.key_file}",
                "database mdb",
                f'suffix "{BASE_DN}"',
                f'rootdn "{ROOT_DN}"',
                f"rootpw {ROOT_PASSWORD}",
                f"directory {self.directory / 'db'}",
                "maxsize 10485760",
                "access to attrs=userPassword by anonymous auth by * none",
                f'access to * by dn.exact="{SERVICE_DN}" read by self read by * none',
                "",
            ]
        )

    def env(self, **overrides: str) -> dict[str, str]:
        """The site's AUTH_LDAP_* variables for this server (LDAPS)."""
        return {
            "AUTH_LDAP_SERVER_URI": self.ldaps_uri,
            "AUTH_LDAP_CA_FILE": str(self.ca_file),
            "AUTH_LDAP_BIND_DN": SERVICE_DN,
            "AUTH_LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
            "AUTH_LDAP_USER_SEARCH_BASE": PEOPLE,
            "AUTH_LDAP_USER_FILTER": USER_FILTER,
            "AUTH_LDAP_GROUP_SEARCH_BASE": GROUPS,
            "AUTH_LDAP_EMPLOYEES_GROUP": EMPLOYEES_GROUP,
            "AUTH_LDAP_COMPLIANCE_GROUP": COMPLIANCE_GROUP,
            "AUTH_LDAP_ADMINS_GROUP": ADMINS_GROUP,
            **overrides,
        }

    def answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        # Up is up: the certificate's name is what some tests get wrong on purpose.
        context.check_hostname = False
        try:
            with (
                socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return True
        except OSError:
            return False

    def start(self) -> None:
        log = self.directory / "slapd.log"
        urls = f"ldaps://127.0.0.1:{self.ldaps_port}/ ldap://127.0.0.1:{self.ldap_port}/"
        with log.open("a") as handle:
            # -d 0: stay in the foreground (logging nothing) so the test owns the process.
            self.process = subprocess.Popen(
                [self.slapd, "-f", str(self.config), "-h", urls, "-d", "0"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"slapd did not start:\n{log.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)

    def modify(self, ldif: str) -> None:
        """Change the directory as its administrator would (ldapmodify over LDAPS)."""
        subprocess.run(
            [
                require_tool("ldapmodify", "make slapd (Debian's ldap-utils package)"),
                *("-H", self.ldaps_uri, "-x", "-D", ROOT_DN, "-w", ROOT_PASSWORD),
            ],
            input=ldif,
            text=True,
            check=True,
            capture_output=True,
            env={"LDAPTLS_CACERT": str(self.ca_file), "PATH": "/usr/bin:/bin"},
        )
