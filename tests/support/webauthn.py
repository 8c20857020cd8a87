"""Chromium's virtual authenticators (the DevTools WebAuthn domain) for browser tests of
passkeys: one per page, optionally holding a copy of a credential from another."""


def virtual_authenticator(page, credential: dict | None = None) -> tuple:
    """A platform authenticator with user verification in ``page``'s browser, holding
    ``credential`` (as WebAuthn.getCredentials gives it) when one is given."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]
    if credential is not None:
        cdp.send(
            "WebAuthn.addCredential", {"authenticatorId": authenticator, "credential": credential}
        )
    return cdp, authenticator


def credentials(cdp, authenticator) -> list[dict]:
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
