"""Two models at once in Chromium: the built-in engine's worker (the default SmolLM2) and an
upstream worker in front of llama.cpp's server; the page's picker chooses per conversation,
and a conversation keeps the model it was given."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, sign_in
from tests.support.production import start_worker
from tests.support.server import free_port, manage, served_site
from tests.support.services import throwaway_database
from tests.support.upstream import MODEL, Engine

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 120_000  # ms
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, postgres_server_url, redis_server_url):
    var_dir = tmp_path_factory.mktemp("var")
    engine = Engine(var_dir.parent / "llama-server.log")
    workers = []
    try:
        with throwaway_database(postgres_server_url) as database_url:
            env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server_url}
            with served_site(var_dir, free_port(), **env) as site:
                try:
                    workers.append(start_worker(site, "built-in"))
                    workers.append(start_worker(site, "upstream", args=engine.worker_args()))
                    yield site
                finally:
                    for worker in workers:
                        worker.stop()
    finally:
        engine.kill()


def ask(page, question):
    page.fill("#composer-input", question)
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(page.locator("#send-button")).to_be_enabled(timeout=30_000)
    page.press("#composer-input", "Enter")


def test_the_picker_chooses_the_model_of_each_conversation(two_models, page_for, screenshots):
    mona = Account("mona", "mona's long passphrase 7")
    manage("createuser", mona.username, "--password-stdin", env=two_models.env, stdin=mona.password)
    page = page_for(two_models)
    sign_in(page, mona)
    page.goto("/")
    picker = page.locator("#model-picker")
    expect(picker).to_be_visible(timeout=ANSWER_TIMEOUT)
    expect(picker.locator("option")).to_have_count(2)
    expect(picker).to_have_value(DEFAULT_MODEL)

    picker.select_option(MODEL)
    expect(page.locator("#worker-status-text")).to_have_text(f"{MODEL} \u00b7 ready")
    ask(page, "What is the capital of France?")
    answer = page.locator(".message-assistant").last
    expect(answer).to_contain_text("Paris", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)
    screenshots.take(page, "answered-by-the-upstream-model")

    page.click("#new-conversation")
    expect(picker).to_have_value(DEFAULT_MODEL)
    ask(page, "What is the capital of France?")
    expect(page.locator(".message-assistant").last).to_contain_text("Paris", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)

    page.reload()
    items = page.locator(".conversation-item")
    expect(items).to_have_count(2)
    items.last.locator("a, button").first.click()
    expect(page.locator(".message-assistant")).to_have_count(1)
    expect(picker).to_have_value(MODEL)
    items.first.locator("a, button").first.click()
    expect(picker).to_have_value(DEFAULT_MODEL)
    screenshots.take(page, "each-conversation-keeps-its-model")
    assert page.csp_violations == []
