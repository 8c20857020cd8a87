"""django-auth-ldap's settings, read from the environment (project/settings.py calls
``ldap_settings()`` when AUTH_LDAP_SERVER_URI is set), and the group type for Active
Directory's in-chain matching rule.

Nothing here touches the database: settings import it before the apps are ready.
TLS is never optional: the URI is ldaps://, or ldap:// with AUTH_LDAP_START_TLS, and the
server's certificate must chain to AUTH_LDAP_CA_FILE (or the system's CAs) and name the host
in the URI; a handshake that fails is an error, never a fallback to plain text.
"""

from collections.abc import Mapping
from pathlib import Path

import ldap
from django.core.exceptions import ImproperlyConfigured
from django_auth_ldap.config import LDAPGroupType, LDAPSearch, NestedGroupOfNamesType

from core.env import env_bool, env_int, env_path, env_str

# Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: "member of, at any depth of nesting",
# answered by the domain controller in one search.
AD_IN_CHAIN = "1.2.840.113556.1.4.1941"

ROLE_GROUP_SETTINGS = (
    "AUTH_LDAP_EMPLOYEES_GROUP",
    "AUTH_LDAP_COMPLIANCE_GROUP",
    "AUTH_LDAP_ADMINS_GROUP",
)


class ActiveDirectoryInChainGroupType(LDAPGroupType):
    """Nested group membership the Active Directory way: one search with the in-chain rule
    instead of one search per level of nesting."""

    def user_groups(self, ldap_user, group_search):
        dn = ldap.filter.escape_filter_chars(ldap_user.dn)
        search = group_search.search_with_additional_term_string(f"(member:{AD_IN_CHAIN}:={dn})")
        return search.execute(ldap_user.connection)

    def is_member(self, ldap_user, group_dn):
        dn = ldap.filter.escape_filter_chars(ldap_user.dn)
        search = LDAPSearch(group_dn, ldap.SCOPE_BASE, f"(member:{AD_IN_CHAIN}:={dn})", ["1.1"])
        try:
            return bool(search.execute(ldap_user.connection))
        except ldap.NO_SUCH_OBJECT:
            return False


def _bind_password(environ: Mapping[str, str] | None, base_dir: Path) -> str:
    password = env_str("AUTH_LDAP_BIND_PASSWORD", environ=environ)
    password_file = env_path("AUTH_LDAP_BIND_PASSWORD_FILE", None, base=base_dir, environ=environ)
    if password and password_file:
        raise ImproperlyConfigured(
            "Set AUTH_LDAP_BIND_PASSWORD or AUTH_LDAP_BIND_PASSWORD_FILE, not both."
        )
    if password_file is None:
        return password
    try:
        return password_file.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"AUTH_LDAP_BIND_PASSWORD_FILE={password_file} cannot be read: {exc.strerror}."
        ) from None


def _required(name: str, environ: Mapping[str, str] | None, example: str) -> str:
    value = env_str(name, environ=environ)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set, and AUTH_LDAP_SERVER_URI is: set it, for example {example}."
        )
    return value


def ldap_settings(base_dir: Path, environ: Mapping[str, str] | None = None) -> dict:
    """Every AUTH_LDAP_* setting django-auth-ldap and accounts.directory read, from the
    environment; raises ImproperlyConfigured naming the variable that is wrong."""
    uri = env_str("AUTH_LDAP_SERVER_URI", environ=environ)
    start_tls = env_bool("AUTH_LDAP_START_TLS", False, environ=environ)
    uris = uri.split()
    if start_tls and not all(u.startswith("ldap://") for u in uris):
        raise ImproperlyConfigured(
            "AUTH_LDAP_START_TLS is for ldap:// URIs; an ldaps:// URI is encrypted already."
        )
    if not start_tls and not all(u.startswith("ldaps://") for u in uris):
        raise ImproperlyConfigured(
            f"AUTH_LDAP_SERVER_URI={uri!r} would send passwords in plain text: use ldaps://, "
            "or ldap:// together with AUTH_LDAP_START_TLS=true."
        )
    ca_file = env_path("AUTH_LDAP_CA_FILE", None, base=base_dir, environ=environ)
    if ca_file is not None and not ca_file.is_file():
        raise ImproperlyConfigured(
            f"AUTH_LDAP_CA_FILE={ca_file} does not exist: point it at the PEM file of the CA "
            "that issued the directory server's certificate."
        )
    timeout = env_int("AUTH_LDAP_TIMEOUT", 5, minimum=1, maximum=60, environ=environ)
    options = {
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
        ldap.OPT_X_TLS_PROTOCOL_MIN: ldap.OPT_X_TLS_PROTOCOL_TLS1_2,
    }
    if ca_file is not None:
        options[ldap.OPT_X_TLS_CACERTFILE] = str(ca_file)
    # Last: makes libldap build its TLS context with the options above.
    options[ldap.OPT_X_TLS_NEWCTX] = 0

    user_base = _required("AUTH_LDAP_USER_SEARCH_BASE", environ, "ou=people,dc=corp,dc=example")
    user_filter = env_str("AUTH_LDAP_USER_FILTER", "(uid=%(user)s)", environ=environ)
    if "%(user)s" not in user_filter:
        raise ImproperlyConfigured(
            f"AUTH_LDAP_USER_FILTER={user_filter!r} must contain %(user)s, where the username "
            "typed at sign-in goes, e.g. (sAMAccountName=%(user)s)."
        )
    group_base = _required("AUTH_LDAP_GROUP_SEARCH_BASE", environ, "ou=groups,dc=corp,dc=example")
    active_directory = env_bool("AUTH_LDAP_ACTIVE_DIRECTORY", False, environ=environ)
    role_groups = {name: env_str(name, environ=environ).lower() for name in ROLE_GROUP_SETTINGS}
    if not role_groups["AUTH_LDAP_EMPLOYEES_GROUP"]:
        raise ImproperlyConfigured(
            "AUTH_LDAP_EMPLOYEES_GROUP is not set: name the directory group (its DN) whose "
            "members may use the chat, e.g. cn=chat-users,ou=groups,dc=corp,dc=example."
        )
    if active_directory:
        group_type = ActiveDirectoryInChainGroupType()
        group_filter = "(objectClass=group)"
    else:
        group_type = NestedGroupOfNamesType()
        group_filter = "(objectClass=groupOfNames)"
    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CA_FILE": ca_file,
        "AUTH_LDAP_CONNECTION_OPTIONS": options,
        "AUTH_LDAP_BIND_DN": env_str("AUTH_LDAP_BIND_DN", environ=environ),
        "AUTH_LDAP_BIND_PASSWORD": _bind_password(environ, base_dir),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE, user_filter),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE, group_filter),
        "AUTH_LDAP_GROUP_TYPE": group_type,
        "AUTH_LDAP_ACTIVE_DIRECTORY": active_directory,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        # Nothing about a directory user is cached: every sign-in asks the directory.
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        **{name: dn or None for name, dn in role_groups.items()},
    }


def _client_secret(environ: Mapping[str, str] | None, base_dir: Path) -> str:
    secret = env_str("OIDC_RP_CLIENT_SECRET", environ=environ)
    secret_file = env_path("OIDC_RP_CLIENT_SECRET_FILE", None, base=base_dir, environ=environ)
    if secret and secret_file:
        raise ImproperlyConfigured(
            "Set OIDC_RP_CLIENT_SECRET or OIDC_RP_CLIENT_SECRET_FILE, not both."
        )
    if secret_file is None:
        return secret
    try:
        return secret_file.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"OIDC_RP_CLIENT_SECRET_FILE={secret_file} cannot be read: {exc.strerror}."
        ) from None


def oidc_settings(base_dir: Path, environ: Mapping[str, str] | None = None) -> dict:
    """mozilla-django-oidc's settings and accounts.oidc's own, from the environment (only
    called when OIDC_OP_ISSUER is set); endpoints come from the issuer's discovery document
    at sign-in, not from here."""
    issuer = env_str("OIDC_OP_ISSUER", environ=environ).rstrip("/")
    if not issuer.startswith("https://"):
        raise ImproperlyConfigured(
            f"OIDC_OP_ISSUER={issuer!r} must be the identity provider's https:// issuer URL, "
            "e.g. https://login.microsoftonline.com/<tenant id>/v2.0."
        )
    client_id = _required("OIDC_RP_CLIENT_ID", environ, "the application (client) id")
    secret = _client_secret(environ, base_dir)
    if not secret:
        raise ImproperlyConfigured(
            "OIDC_RP_CLIENT_SECRET (or OIDC_RP_CLIENT_SECRET_FILE) is not set: use the client "
            "secret the identity provider gave this application."
        )
    ca_file = env_path("OIDC_CA_FILE", None, base=base_dir, environ=environ)
    if ca_file is not None and not ca_file.is_file():
        raise ImproperlyConfigured(
            f"OIDC_CA_FILE={ca_file} does not exist: point it at the PEM file of the CA that "
            "issued the identity provider's certificate, or unset it for the system's CAs."
        )
    algorithm = env_str("OIDC_RP_SIGN_ALGO", "RS256", environ=environ)
    if algorithm not in {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"}:
        raise ImproperlyConfigured(
            f"OIDC_RP_SIGN_ALGO={algorithm!r}: use the provider's signing algorithm, such as "
            "RS256 or ES256 (shared-secret and unsigned tokens are not accepted)."
        )
    roles = {
        name: env_str(name, environ=environ)
        for name in ("OIDC_EMPLOYEES_ROLE", "OIDC_COMPLIANCE_ROLE", "OIDC_ADMINS_ROLE")
    }
    if not roles["OIDC_EMPLOYEES_ROLE"]:
        raise ImproperlyConfigured(
            "OIDC_EMPLOYEES_ROLE is not set: name the group or role (as the provider's "
            "OIDC_ROLES_CLAIM lists it) whose members may use the chat."
        )
    acr_values = [
        value.strip()
        for value in env_str("OIDC_MFA_ACR_VALUES", environ=environ).split(",")
        if value.strip()
    ]
    return {
        "OIDC_OP_ISSUER": issuer,
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": algorithm,
        "OIDC_RP_SCOPES": env_str("OIDC_RP_SCOPES", "openid email profile", environ=environ),
        # requests' verify: the CA file, else the system's CAs; never off.
        "OIDC_VERIFY_SSL": str(ca_file) if ca_file else True,
        "OIDC_TIMEOUT": env_int("OIDC_TIMEOUT", 10, minimum=1, maximum=60, environ=environ),
        "OIDC_USE_NONCE": True,
        "OIDC_USE_PKCE": True,
        "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
        "OIDC_CREATE_USER": True,
        "OIDC_STORE_ACCESS_TOKEN": False,
        "OIDC_STORE_ID_TOKEN": False,
        "OIDC_AUTHENTICATION_CALLBACK_URL": "accounts:oidc_callback",
        "LOGIN_REDIRECT_URL_FAILURE": "/accounts/login/",
        "OIDC_ROLES_CLAIM": env_str("OIDC_ROLES_CLAIM", "groups", environ=environ),
        "OIDC_USERNAME_CLAIM": env_str(
            "OIDC_USERNAME_CLAIM", "preferred_username", environ=environ
        ),
        **roles,
        "OIDC_TRUST_IDP_MFA": env_bool("OIDC_TRUST_IDP_MFA", False, environ=environ),
        "OIDC_MFA_ACR_VALUES": acr_values,
        "OIDC_PROVIDER_NAME": env_str("OIDC_PROVIDER_NAME", "company sign-in", environ=environ),
    }
