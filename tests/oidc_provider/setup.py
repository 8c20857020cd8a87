"""Creates the provider's database, its users (from claims.json, with their passwords) and
the chat's client application. Run once before the provider starts."""

import json
import os
import sys

import django
from django.core.management import call_command


def main(client_secret: str, redirect_uri: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    people = json.loads((settings.STATE_DIR / "claims.json").read_text())
    for username, person in people.items():
        User.objects.create_user(username=username, password=person["password"])
    Application.objects.create(
        name="Private Chat",
        client_id="private-chat",
        client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
