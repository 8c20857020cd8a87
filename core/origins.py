"""The websocket Origin check, by the HTTP CSRF check's rule."""

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.utils.http import is_same_domain


class TrustedOriginValidator(OriginValidator):
    """Accept a websocket only from an Origin in CSRF_TRUSTED_ORIGINS, compared as Django's
    CSRF check compares them: scheme, host and port exactly, or a subdomain for an entry
    with ``*.``. A browser sends ``Origin: https://host:port`` on a wss connection, so the
    list settings builds from ALLOWED_HOSTS and PUBLIC_PORT is exactly the site's pages.
    (AllowedHostsOriginValidator compares host names only: any scheme and port would do.)
    The list is read for each connection, so it follows the settings."""

    def __init__(self, application):
        super().__init__(application, allowed_origins=())

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None or not parsed_origin.scheme or not parsed_origin.netloc:
            return False
        if parsed_origin.path or parsed_origin.params or parsed_origin.query:
            return False
        if parsed_origin.fragment or "@" in parsed_origin.netloc:
            return False
        netloc = parsed_origin.netloc.lower()
        for trusted in settings.CSRF_TRUSTED_ORIGINS:
            scheme, _, trusted_netloc = trusted.lower().partition("://")
            if scheme != parsed_origin.scheme:
                continue
            if trusted_netloc.startswith("*."):
                if is_same_domain(netloc, trusted_netloc[1:]):
                    return True
            elif netloc == trusted_netloc:
                return True
        return False
