"""Which model a user may use and which one a turn goes to: the models live workers serve,
per-group access (``ModelAccess``, set in the admin), the site's default
(``LLM_DEFAULT_MODEL``) and the conversation's remembered model."""

from django.conf import settings

from chat.inference import registry
from chat.models import ModelAccess
from chat.services import conversation_of


def served_models(workers: list[dict] | None = None) -> list[str]:
    """Names of the models some live worker serves or is loading, sorted; ``workers``: the
    registry's live workers where the caller has just read them."""
    return sorted(
        {
            worker["model"]
            for worker in (registry.live_workers() if workers is None else workers)
            if worker.get("model") and worker.get("state") in {"ready", "loading"}
        }
    )


def may_use_model(user, name: str) -> bool:
    """Whether ``user`` may chat with the model ``name``: every active user may, unless an
    admin restricted it to groups (``ModelAccess``) and they are in none of them."""
    if not (user and user.is_active and name):
        return False
    access = ModelAccess.objects.filter(model_name=name).first()
    if access is None:
        return True
    groups = list(access.groups.values_list("pk", flat=True))
    return not groups or user.groups.filter(pk__in=groups).exists()


def models_for(user, workers: list[dict] | None = None) -> list[str]:
    """The model names ``user`` may use, served now or configured as the site's default,
    sorted with the default first."""
    names = {settings.LLM_DEFAULT_MODEL, *served_models(workers)}
    allowed = [name for name in names if may_use_model(user, name)]
    return sorted(allowed, key=lambda name: (name != settings.LLM_DEFAULT_MODEL, name))


def default_model_for(user, workers: list[dict] | None = None) -> str:
    """The model a new conversation of ``user`` gets: the site's default where they may use
    it and it is served (or nothing is), else the first served model they may use."""
    if workers is None:
        workers = registry.live_workers()
    allowed = models_for(user, workers)
    served = set(served_models(workers))
    running = [name for name in allowed if name in served]
    if running and allowed[0] not in served:
        return running[0]
    return allowed[0] if allowed else ""


class ModelNotAllowed(Exception):
    """The user may not use that model (an admin restricted it to other groups)."""


def model_of(user, conversation_id, chosen: str | None, workers: list[dict] | None = None) -> str:
    """The model a turn goes to: ``chosen`` (a picker's choice) when given, else the model
    the conversation remembers, else the user's default. Raises ModelNotAllowed for a model
    the user may not use, and ConversationNotFound for someone else's conversation.
    ``workers``: the registry's live workers where the caller has just read them."""
    name = chosen or (
        conversation_of(user, conversation_id).model_name if conversation_id is not None else ""
    )
    if not name:
        # The user's default is one they may use (or none, when they may use none).
        name = default_model_for(user, workers)
        if name:
            return name
    if not may_use_model(user, name):
        raise ModelNotAllowed(name)
    return name
