"""/v1 before any worker is reached: the bearer token and nothing else, scopes, limits and
OpenAI's error objects for bad requests."""

import json

import pytest
from django.test import Client

from api import services
from api.models import ApiUsage
from audit.models import AuditEvent
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

IP = "10.4.4.4"
MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture
def api():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def token(employee):
    return services.create_api_token(actor=employee, user=employee, name="tests")[1]


def get(client, path, token=None, **extra):
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get(path, REMOTE_ADDR=IP, secure=True, **extra)


def post(client, path, body, token=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        path, data, content_type="application/json", REMOTE_ADDR=IP, secure=True, **extra
    )


def ask(**fields):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], **fields}


def test_models_lists_the_configured_model(api, token):
    response = get(api, "/v1/models", token)

    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "organization"}
            for name in (MODEL, "sentence-transformers/all-MiniLM-L6-v2")
        ],
    }
    assert not response.cookies


def test_without_a_token_it_is_401_with_openais_error_object(api):
    response = get(api, "/v1/models")

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in error["message"]


def test_a_signed_in_session_is_not_a_token(client, employee):
    login_2fa(client, employee)

    response = get(client, "/v1/models")

    assert response.status_code == 401
    assert not response.cookies


def test_a_token_in_the_url_is_not_read(api, token):
    assert get(api, f"/v1/models?api_key={token}").status_code == 401


def test_a_token_without_the_scope_is_403_and_recorded(api, employee):
    _, chat_only = services.create_api_token(
        actor=employee, user=employee, name="chat", scopes="chat"
    )

    response = get(api, "/v1/models", chat_only)

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    assert AuditEvent.objects.filter(action="api.refused", details__reason="scope").exists()


def test_someone_who_may_not_chat_is_403(api, employee):
    _, text = services.create_api_token(actor=employee, user=employee, name="x")
    employee.groups.clear()

    assert get(api, "/v1/models", text).status_code == 403


def test_past_the_requests_a_minute_it_is_429_with_retry_after(api, token, settings):
    settings.API_REQUESTS_PER_MINUTE = 2
    assert get(api, "/v1/models", token).status_code == 200
    assert get(api, "/v1/models", token).status_code == 200

    response = get(api, "/v1/models", token)

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert AuditEvent.objects.filter(
        action="api.refused", details__reason="requests_per_minute"
    ).exists()


def test_past_the_tokens_a_day_it_is_429_until_midnight(api, token, employee, settings):
    settings.API_TOKENS_PER_DAY = 100
    ApiUsage.objects.create(
        token=employee.api_tokens.get(),
        user=employee,
        day=services.today(),
        model_name=MODEL,
        requests=1,
        prompt_tokens=60,
        completion_tokens=40,
    )

    response = post(api, "/v1/chat/completions", ask(), token)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "tokens_per_day_exceeded"
    assert 1 <= int(response["Retry-After"]) <= 86400


def test_csrf_does_not_apply_and_no_worker_is_a_503(api, token):
    response = post(api, "/v1/chat/completions", ask(), token)

    # Not 403 (CSRF): the request reached the point where a worker is needed.
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 10**6}, "max_completion_tokens"),
        ({"n": 2}, "n"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        ({"model": None}, "model"),
    ],
)
def test_values_out_of_bounds_are_400_naming_the_field(api, token, fields, param):
    response = post(api, "/v1/chat/completions", ask(**fields), token)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].endswith(".")


def test_fields_openai_accepts_are_ignored(api, token):
    response = post(
        api, "/v1/chat/completions", ask(presence_penalty=0.5, seed=3, user="me"), token
    )

    assert response.status_code == 503


def test_a_body_that_is_not_json_is_400(api, token):
    response = post(api, "/v1/chat/completions", "{not json", token)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "That is not valid JSON."


def test_an_unknown_model_is_404(api, token):
    response = post(api, "/v1/chat/completions", ask(model="gpt-4o"), token)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_an_unknown_path_and_a_wrong_method_get_openai_errors(api, token):
    assert get(api, "/v1/nothing", token).status_code == 404
    wrong = get(api, "/v1/chat/completions", token)
    assert wrong.status_code == 405
    assert "Use POST" in wrong.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"model": "text-embedding-3-small"}, 404, "model"),
        ({"input": []}, 400, "input"),
        ({"input": [1, 2, 3]}, 400, "input"),
        ({"input": ""}, 400, "input"),
        ({"dimensions": 128}, 400, "dimensions"),
        ({"encoding_format": "int8"}, 400, "encoding_format"),
    ],
)
def test_bad_embedding_requests_are_refused_before_the_model(api, token, fields, status, param):
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "hello", **fields}

    response = post(api, "/v1/embeddings", body, token)

    assert response.status_code == status
    assert response.json()["error"]["param"] == param
