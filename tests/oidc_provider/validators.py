import json

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    """Adds each user's claims from claims.json (groups, amr, names; "aud" too, which
    replaces the real audience: how the tests get a token meant for another client)."""

    oidc_claim_scope = None

    def get_additional_claims(self, request):
        people = json.loads((settings.STATE_DIR / "claims.json").read_text())
        return people[request.user.username]["claims"]
