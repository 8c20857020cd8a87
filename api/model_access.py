"""Which models a caller may use, and where a request for one goes.

Every worker serves the site's one model (LLM_MODEL) and reads the shared requests channel,
so a caller who may chat may use every model a live worker serves (or the configured one
while none is up). With several models and per-group access, these four functions are the
only place to change: ``chat.services.models_for`` / ``may_use_model`` for the rules,
the model's own requests channel and its workers for the routing.
"""

from pathlib import Path

from django.conf import settings

from accounts.roles import may_chat
from chat.inference import messages, registry


def models_for(user) -> list[str]:
    if not may_chat(user):
        return []
    served = [w.get("model") for w in registry.live_workers() if w.get("state") != "stopping"]
    names = [name for name in served if name] or [Path(settings.LLM_MODEL).name]
    return sorted(set(names))


def may_use_model(user, name: str) -> bool:
    return name in models_for(user)


def requests_channel(model: str) -> str:
    """Where requests for ``model`` wait for a worker."""
    return messages.REQUESTS_CHANNEL


def workers_of(model: str) -> list[dict]:
    """The live workers that can answer ``model``, as the registry lists them."""
    return registry.live_workers()
