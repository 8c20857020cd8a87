import pytest


@pytest.mark.django_db
def test_a_server_error_shows_a_page_that_says_what_to_do(settings, employee_client):
    settings.ROOT_URLCONF = "tests.project.broken_urls"
    employee_client.raise_request_exception = False

    response = employee_client.get("/broken", REMOTE_ADDR="10.0.0.1", secure=True)

    assert response.status_code == 500
    assert b"Something went wrong on the server" in response.content
    assert b"try again in a minute" in response.content


@pytest.mark.django_db
def test_a_database_outage_answers_503_saying_nothing_was_lost(settings, employee_client):
    settings.ROOT_URLCONF = "tests.project.broken_urls"
    employee_client.raise_request_exception = False

    response = employee_client.get("/database-down", REMOTE_ADDR="10.0.0.1", secure=True)

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert b"temporarily unavailable" in response.content
    assert b"conversations are safe" in response.content
