"""A small OpenID Connect provider (django-oauth-toolkit) the OIDC sign-in tests start as
a process of its own on loopback, over TLS with a test CA (tests/support/oidc.py)."""
