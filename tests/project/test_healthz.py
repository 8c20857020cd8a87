import ipaddress
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
    assert body["checks"]["inference"]["models"] == {"SmolLM2-135M-Instruct": {"ready": 1}}
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
        "models": {},
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


# --- who sees the details -------------------------------------------------------------------

# Inside INTERNAL_NETWORKS, outside METRICS_NETWORKS (loopback by default).
INTRANET = "10.20.30.40"


@pytest.mark.django_db
def test_an_anonymous_caller_outside_the_metrics_networks_sees_only_the_status(
    client, ready_worker
):
    response = client.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert b"gpu-01" not in response.content


@pytest.mark.django_db
def test_a_failing_site_tells_an_outsider_only_that_it_fails(client):
    response = client.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "failing"}


@pytest.mark.django_db
def test_a_signed_in_employee_sees_only_the_status(employee_client, ready_worker):
    response = employee_client.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.django_db
def test_a_staff_member_without_a_second_factor_sees_only_the_status(
    client, admin_user, ready_worker
):
    client.force_login(admin_user)

    response = client.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.django_db
def test_a_verified_admin_sees_each_part(admin_client_secure, ready_worker):
    response = admin_client_secure.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    body = json.loads(response.content)
    assert body["status"] == "ok"
    assert body["checks"]["inference"]["workers"][0]["name"] == "gpu-01"


@pytest.mark.django_db
def test_a_monitoring_address_in_metrics_networks_sees_each_part(client, settings, ready_worker):
    settings.METRICS_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]

    response = client.get("/healthz", REMOTE_ADDR=INTRANET, secure=True)

    assert json.loads(response.content)["checks"]["database"]["ok"] is True
