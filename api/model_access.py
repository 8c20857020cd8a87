"""Which models an API caller may use, and where a request for one goes: the chat page's
rules (``chat.model_choice.models_for`` / ``may_use_model``: per-group model access, the site's
default) and its routing (each model's own requests channel, read only by its workers)."""

from accounts.roles import may_chat
from chat import model_choice
from chat.inference import messages, registry


def models_for(user) -> list[str]:
    if not may_chat(user):
        return []
    return model_choice.models_for(user)


def may_use_model(user, name: str) -> bool:
    """A model the caller may use and the site knows (served now, or its default): any
    other name is "not found", as OpenAI answers for a model that does not exist."""
    return name in models_for(user)


def requests_channel(model: str) -> str:
    """Where requests for ``model`` wait for one of its workers."""
    return messages.requests_channel(model)


def workers_of(model: str) -> list[dict]:
    """The live workers serving ``model``, as the registry lists them."""
    return [worker for worker in registry.live_workers() if worker.get("model") == model]
