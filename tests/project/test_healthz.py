import json

import pytest


@pytest.fixture
def ready_worker():
    from chat.inference import registry

    registry.beat("gpu-01", {"state": "ready", "model": "SmolLM2-135M-Instruct"})
    yield
    registry.forget("gpu-01")


@pytest.mark.django_db
def test_it_reports_ok_with_each_part_when_everything_answers(client, ready_worker):
    response = client.get("/healthz", secure=True)

    assert response.status_code == 200
    body = json.loads(response.content)
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["inference"]["workers"][0]["model"] == "SmolLM2-135M-Instruct"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_answers_503_when_no_inference_worker_is_ready(client):
    response = client.get("/healthz", secure=True)

    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["inference"] == {
        "ok": False,
        "workers": [],
        "error": "no inference worker is ready",
    }


@pytest.mark.django_db
def test_it_answers_503_naming_the_channel_layer_when_redis_is_down(
    client, settings, free_port, ready_worker
):
    # Nothing listens on free_port: the Redis channel layer cannot connect.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port}/0"]},
        }
    }

    response = client.get("/healthz", secure=True)

    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["status"] == "failing"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is False
    assert "Error" in body["checks"]["channel_layer"]["error"]


@pytest.mark.django_db
def test_it_only_answers_get(client):
    assert client.post("/healthz", secure=True).status_code == 405
