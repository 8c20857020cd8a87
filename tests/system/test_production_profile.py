"""The same server with PostgreSQL and Redis (the production profile)."""

import pytest

from tests.support.server import free_port, served_site
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def site(tmp_path_factory, postgres_server_url, redis_server_url):
    with (
        throwaway_database(postgres_server_url) as database_url,
        served_site(
            tmp_path_factory.mktemp("var"),
            free_port(),
            DATABASE_URL=database_url,
            REDIS_URL=redis_server_url,
        ) as running,
    ):
        yield running


def test_health_sees_postgresql_and_redis_and_says_no_worker_runs_yet(site):
    # The production profile runs no worker inside the web process; none is started here.
    status, body = site.json("/healthz")

    assert status == 503
    assert body["checks"] == {
        "database": {"ok": True, "ms": body["checks"]["database"]["ms"]},
        "channel_layer": {"ok": True, "ms": body["checks"]["channel_layer"]["ms"]},
        "inference": {
            "ok": False,
            "workers": [],
            "models": {},
            "error": "no inference worker is ready",
        },
    }


def test_the_database_is_postgresql_not_the_embedded_sqlite(site):
    assert not (site.var_dir / "db.sqlite3").exists()


def test_pages_are_served_with_the_production_profile(site):
    status, _, body = site.request("/accounts/login/")

    assert status == 200
    assert b"Private Chat" in body
