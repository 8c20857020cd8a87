"""The upstream engine's checks and prompts, without an engine: where it may be, which key it
sends, and how a long conversation is cut to its context. Streaming from a real engine is in
tests/system/test_upstream.py."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from chat.inference.upstream import (
    CHARS_PER_TOKEN,
    UpstreamEngine,
    api_base,
    estimated_tokens,
    upstream_api_key,
)


def engine(url="http://127.0.0.1:8000", **options) -> UpstreamEngine:
    return UpstreamEngine(url, "m", system_prompt="Be brief.", **options)


def test_the_base_url_ends_in_v1_however_it_is_given():
    assert api_base("http://10.0.0.5:8000") == "http://10.0.0.5:8000/v1"
    assert api_base("http://10.0.0.5:8000/v1/") == "http://10.0.0.5:8000/v1"


@pytest.mark.parametrize("url", ["ftp://10.0.0.5/", "10.0.0.5:8000", "http:///v1"])
def test_a_url_that_is_not_http_is_refused_with_an_example(url):
    with pytest.raises(ImproperlyConfigured, match=r"such as http://10\.0\.0\.5:8000/v1"):
        api_base(url)


def test_an_engine_outside_the_internal_networks_is_refused(settings):
    with pytest.raises(ImproperlyConfigured, match=r"198\.51\.100\.7, outside INTERNAL_NETWORKS"):
        engine("http://198.51.100.7:8000")


def test_a_host_name_is_checked_by_every_address_it_resolves_to():
    assert engine("http://localhost:8000").base == "http://localhost:8000/v1"


def test_a_model_name_is_required():
    with pytest.raises(ImproperlyConfigured, match="--upstream-model"):
        UpstreamEngine("http://127.0.0.1:8000", "")


def test_https_is_verified_against_the_site_ca(tmp_path):
    with pytest.raises(FileNotFoundError):
        engine("https://127.0.0.1:8443", ca_file=tmp_path / "missing-ca.pem")


def test_the_api_key_comes_from_the_environment_or_its_file(settings, tmp_path):
    settings.UPSTREAM_API_KEY = ""
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    settings.UPSTREAM_API_KEY_FILE = key_file
    assert upstream_api_key() == "sk-from-file"

    settings.UPSTREAM_API_KEY = "sk-from-env"
    assert upstream_api_key() == "sk-from-env"
    assert engine(api_key=upstream_api_key()).headers == {"Authorization": "Bearer sk-from-env"}


def test_an_unreadable_key_file_is_a_clear_error(settings, tmp_path):
    settings.UPSTREAM_API_KEY = ""
    settings.UPSTREAM_API_KEY_FILE = tmp_path / "missing"
    with pytest.raises(ImproperlyConfigured, match=r"UPSTREAM_API_KEY_FILE=.* cannot be read"):
        upstream_api_key()


def conversation(turns: int) -> list[dict]:
    history = []
    for number in range(turns):
        history += [
            {"role": "user", "content": f"question {number} " + "word " * 40},
            {"role": "assistant", "content": f"answer {number} " + "word " * 40},
        ]
    return [*history, {"role": "user", "content": "the newest question"}]


def test_old_turns_are_dropped_to_fit_the_context():
    upstream = engine(context=400)
    history = conversation(10)

    prompt = upstream.prompt_messages(history, max_new_tokens=100)

    assert prompt[0] == {"role": "system", "content": "Be brief."}
    assert prompt[-1] == history[-1]
    assert 1 < len(prompt) < len(history) + 1
    assert prompt[1]["role"] == "user"
    assert estimated_tokens(prompt) <= 300


def test_a_conversation_that_fits_is_sent_whole():
    upstream = engine(context=4096)
    history = conversation(3)

    assert upstream.prompt_messages(history, max_new_tokens=100)[1:] == history


def test_a_newest_message_too_long_for_the_context_keeps_its_end():
    upstream = engine(context=200)
    newest = {"role": "user", "content": "start " + "x" * 2000 + " end"}

    prompt = upstream.prompt_messages([newest], max_new_tokens=100)

    assert prompt[-1]["content"].endswith(" end")
    assert len(prompt[-1]["content"]) < 100 * CHARS_PER_TOKEN
    assert estimated_tokens(prompt) <= 100


def test_the_command_refuses_upstream_options_without_an_upstream():
    with pytest.raises(CommandError, match="go with --upstream URL"):
        call_command("inference_worker", "--upstream-model", "m", "--metrics-port", "0")
