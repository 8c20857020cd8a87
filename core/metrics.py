"""The project's Prometheus metric objects for web processes: requests, websockets,
sign-in failures and lockouts, audit events.

Labels stay few and fixed (method, status class, action, outcome), never a path or a user,
so the number of series does not grow with traffic. Apps define their own metrics beside
their code (the inference worker's are in ``chat.inference.metrics``); all of them land in
prometheus_client's default registry, which ``core.metrics_endpoint`` serves. The sign-in
counters follow django.contrib.auth's and django-axes' signals, connected when this module
is imported (``project.apps`` does, in every process).
"""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from prometheus_client import Counter, Gauge

HTTP_REQUESTS = Counter(
    "llmchat_http_requests",
    "HTTP responses this web process sent, by request method and status class (2xx, 4xx, ...).",
    ["method", "status_class"],
)
WEBSOCKETS_ACTIVE = Gauge(
    "llmchat_websockets_active", "Chat websockets open on this web process (after sign-in)."
)
LOGIN_FAILURES = Counter(
    "llmchat_login_failures",
    "Sign-ins refused at the password step: a wrong username or password, or a lockout.",
)
AUDIT_EVENTS = Counter(
    "llmchat_audit_events",
    "Audit events committed by this process, by action (the catalogue in docs/security.md: "
    "otp.failure, network.refused, permission.denied, ...) and outcome.",
    ["action", "outcome"],
)
LOGIN_LOCKOUTS = Counter(
    "llmchat_login_lockouts",
    "Sign-in attempts that locked a username and address pair out, or came while it was "
    "locked out (django-axes; each is a lockout audit event).",
)


@receiver(user_login_failed, dispatch_uid="metrics_login_failure")
def _count_login_failure(sender, **kwargs):
    LOGIN_FAILURES.inc()


@receiver(user_locked_out, dispatch_uid="metrics_lockout")
def _count_lockout(sender, **kwargs):
    LOGIN_LOCKOUTS.inc()
