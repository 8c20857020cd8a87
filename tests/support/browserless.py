"""Signing in to a served site over real HTTPS, the way a browser does, without one: the
bench's client (chat/bench/loopback.py), which signs in with password and authenticator
code, keeps the key shown at enrolment, and posts forms with their CSRF token."""

from chat.bench.loopback import SignedInClient as SignedInClient
