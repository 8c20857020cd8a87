"""/livez, the liveness probe: it must answer without the database.

These tests have no `django_db` mark, so pytest-django refuses any database query they
cause: a /livez that touched the database would fail here with a 500.
"""

import json


def test_it_answers_alive_without_touching_the_database(client):
    response = client.get("/livez", secure=True)

    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "alive"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_by_contrast_needs_the_database(client):
    # The check above can fail: /healthz asks the database, which these tests may not use.
    response = client.get("/healthz", secure=True)

    assert response.status_code == 503
    assert json.loads(response.content)["checks"]["database"]["ok"] is False


def test_it_needs_no_sign_in_but_keeps_the_network_policy(client):
    assert client.get("/livez", secure=True).status_code == 200

    refused = client.get("/livez", secure=True, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
