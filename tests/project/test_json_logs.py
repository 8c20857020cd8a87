"""Log lines as a log collector reads them: one JSON object each, nothing secret in them."""

import contextlib
import importlib
import io
import json
import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from core.logging import REDACTED, JsonFormatter, RedactSecretsFilter
from tests.chat.test_worker_metrics import chat_round_trip
from tests.project.test_metrics import settings_module


@contextlib.contextmanager
def captured_logs(level=logging.DEBUG):
    """Every record of every logger at ``level`` and above, formatted as the console does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    # Loggers that do not propagate to the root get the handler of their own.
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield stream
    finally:
        for logger, old_level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(old_level)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_console_writes_json_with_redaction_unless_told_otherwise(settings):
    console = settings.LOGGING["handlers"]["console"]

    assert settings.LOG_FORMAT == "json"
    assert console["formatter"] == "json"
    assert settings.LOGGING["formatters"]["json"]["()"] == "core.logging.JsonFormatter"
    assert "redact_secrets" in console["filters"]


def test_log_format_plain_gives_lines_for_a_terminal(monkeypatch, tmp_path):
    loaded = settings_module(monkeypatch, tmp_path, LOG_FORMAT="plain")

    assert loaded.LOGGING["handlers"]["console"]["formatter"] == "plain"
    assert loaded.LOGGING["handlers"]["console"]["filters"] == ["redact_secrets"]


def test_an_unknown_log_format_stops_start_up_with_a_sentence(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT='xml': use json"):
        settings_module(monkeypatch, tmp_path, LOG_FORMAT="xml")


@pytest.mark.django_db
def test_a_record_logged_during_a_request_is_one_json_line_with_its_request_id():
    with captured_logs(logging.WARNING) as stream:
        response = Client().get("/", REMOTE_ADDR="203.0.113.5", secure=True)

    (line,) = [entry for entry in lines(stream) if entry["logger"] == "core.network"]
    assert len(stream.getvalue().splitlines()) == len(lines(stream))
    assert line["level"] == "WARNING"
    assert line["message"].startswith("network.refused: HTTP GET / from 203.0.113.5")
    assert line["request_id"] == response["X-Request-ID"]
    assert line["time"].endswith("Z")
    assert line["time"][:4].isdigit()


def test_outside_a_request_there_is_no_request_id():
    with captured_logs() as stream:
        logging.getLogger("chat.test").info("worker ready")

    (line,) = lines(stream)
    assert "request_id" not in line
    assert line == {
        "time": line["time"],
        "level": "INFO",
        "logger": "chat.test",
        "message": "worker ready",
    }


def test_secret_looking_extra_fields_are_redacted_and_counts_are_kept():
    with captured_logs() as stream:
        logging.getLogger("chat.test").warning(
            "sign-in trouble",
            extra={
                "password": "hunter2 hunter2",
                "api_token": "tok-123",
                "prompt_tokens": 42,
                "content_length": 17,
                "worker": "gpu-01",
                "details": {"otp_code": "123456", "attempts": 3},
            },
        )

    (line,) = lines(stream)
    assert line["password"] == REDACTED
    assert line["api_token"] == REDACTED
    assert line["details"] == {"otp_code": REDACTED, "attempts": 3}
    assert (line["prompt_tokens"], line["content_length"], line["worker"]) == (42, 17, "gpu-01")
    assert "hunter2" not in stream.getvalue()
    assert "123456" not in stream.getvalue()


def test_an_exception_is_kept_inside_its_line():
    with captured_logs() as stream:
        try:
            raise RuntimeError("the decode step failed")
        except RuntimeError:
            logging.getLogger("chat.test").exception("generation failed")

    (line,) = lines(stream)
    assert "RuntimeError: the decode step failed" in line["exception"]
    assert line["message"] == "generation failed"


def test_extras_cannot_pass_for_the_standard_fields_or_break_the_line():
    with captured_logs() as stream:
        logging.getLogger("chat.test").info(
            "line one\nline two", extra={"level": "DEBUG", "peer": object(), "when": {1, 2}}
        )

    (line,) = lines(stream)
    assert line["level"] == "INFO"
    assert line["message"] == "line one\nline two"
    assert line["peer"] == "<object>"
    assert line["when"] == [1, 2]


@pytest.mark.django_db(transaction=True)
async def test_a_chat_message_and_its_answer_never_reach_the_logs(employee, settings):
    # Django logs each SQL statement with its parameters only under DEBUG: include them too.
    settings.DEBUG = True
    # Loading the ASGI application runs django.setup(), which configures logging afresh and
    # would remove the capturing handler: load it first.
    importlib.import_module("project.asgi")
    question = "My badge number is 99-1234; plan the Zephyrine merger quietly."
    with captured_logs() as stream:
        frames = await chat_round_trip(employee, question)

    answer = "".join(frame["text"] for frame in frames if frame["type"] == "chat.delta")
    logged = stream.getvalue()
    assert answer == "Paris is the capital of France."
    # The capture saw the round trip at DEBUG...
    assert "Inference worker metrics-worker serves scripted-model" in logged
    assert any(entry["logger"] == "django.db.backends" for entry in lines(stream))
    # ...and neither the question nor the answer, whole or in part.
    for secret_part in ("Zephyrine", "99-1234", "capital of France"):
        assert secret_part not in logged


@pytest.mark.django_db
def test_a_failed_request_logs_its_http_status(settings, employee_client):
    settings.ROOT_URLCONF = "tests.project.broken_urls"
    employee_client.raise_request_exception = False

    with captured_logs(logging.ERROR) as stream:
        employee_client.get("/broken", REMOTE_ADDR="10.0.0.1", secure=True)

    (line,) = [line for line in lines(stream) if line["logger"] == "django.request"]
    assert line["status_code"] == 500
