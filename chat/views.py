"""The chat page and the small JSON API the page uses for everything but streaming."""

import functools

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import may_chat
from audit.log import record_probe
from chat import services
from chat.inference import registry
from core.json_input import JSONInputError, parse_json

TITLE_BODY_MAX = 4096


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


def _not_found(request, conversation_id) -> JsonResponse:
    """404 for a conversation id that is not the user's (or no one's), recorded as a probe."""
    record_probe(
        "conversation.not_found",
        source=request.META.get("REMOTE_ADDR", ""),
        outcome="denied",
        request=request,
        target=str(conversation_id),
        channel="http",
    )
    return _error(404, "not_found", "That conversation does not exist.")


NOT_AN_EMPLOYEE = (
    "Your account may not use the chat. If you need it for your work, ask an administrator "
    "to add you to Employees."
)


def employees_only(view):
    """403 (recorded as permission.denied) for a signed-in user outside Employees."""

    @functools.wraps(view)
    def checked(request, *args, **kwargs):
        if not may_chat(request.user):
            raise PermissionDenied(NOT_AN_EMPLOYEE)
        return view(request, *args, **kwargs)

    return checked


@never_cache
@require_GET
def chat_page(request):
    if not may_chat(request.user) and request.user.is_staff:
        # Compliance staff or admins without the chat: their start page is the admin.
        return redirect("admin:index")
    if not may_chat(request.user):
        raise PermissionDenied(NOT_AN_EMPLOYEE)
    return render(
        request,
        "chat/index.html",
        {"ws_path": "/ws/chat/", "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS},
    )


@never_cache
@require_GET
@employees_only
def conversation_list(request):
    services.fail_stale_answers(actor=request.user, request=request)
    return JsonResponse(
        {
            "conversations": [
                {"id": str(c.pk), "title": c.title, "updated_at": c.updated_at.isoformat()}
                for c in services.conversations_of(request.user)
            ]
        }
    )


@never_cache
@require_GET
@employees_only
def conversation_detail(request, conversation_id):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    return JsonResponse(
        {
            "id": str(conversation.pk),
            "title": conversation.title,
            "model": conversation.model_name,
            "messages": [
                services.message_as_dict(m) for m in conversation.messages.order_by("created_at")
            ],
        }
    )


@require_POST
@employees_only
def conversation_rename(request, conversation_id):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    if len(request.body) > TITLE_BODY_MAX:
        return _error(400, "too_large", "That title is too long.")
    try:
        body = parse_json(request.body)
    except JSONInputError as error:
        return _error(400, "bad_request", f'{error} Send JSON like {{"title": "New name"}}.')
    if not isinstance(body, dict):
        return _error(400, "bad_request", 'Send JSON like {"title": "New name"}.')
    title = body.get("title")
    if not isinstance(title, str):
        return _error(400, "bad_request", "The title must be text.")
    try:
        services.rename(actor=request.user, conversation=conversation, title=title, request=request)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    return JsonResponse({"id": str(conversation.pk), "title": conversation.title})


@require_POST
@employees_only
def conversation_delete(request, conversation_id):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    services.delete(actor=request.user, conversation=conversation, request=request)
    return JsonResponse({"deleted": str(conversation_id)})


@never_cache
@require_GET
@employees_only
def conversation_export(request, conversation_id, export_format):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    content_type, body = services.export(
        actor=request.user, conversation=conversation, export_format=export_format, request=request
    )
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="conversation-{conversation.pk}.{export_format}"'
    )
    return response


@never_cache
@require_GET
@employees_only
def worker_status(request):
    """Whether the models this person may use are running: overall (``state``, ``model``,
    ``workers``, as the status line shows it) and per model for the picker (``models``, with
    ``default``, the model a new conversation gets)."""
    workers = registry.live_workers()
    allowed = services.models_for(request.user)
    mine = [w for w in workers if w.get("model") in allowed]
    models = [{"name": name, "state": _model_state(mine, name)} for name in allowed]
    ready = [w for w in mine if w.get("state") == "ready"]
    loading = [w for w in mine if w.get("state") == "loading"]
    if ready:
        state = "ready"
    elif loading:
        state = "loading"
    else:
        # None, or only workers whose model failed to load (or that are stopping).
        state = "no_worker"
    model = (ready or loading or [{}])[0].get("model") or None
    return JsonResponse(
        {
            "state": state,
            "model": model,
            "workers": len(ready),
            "models": models,
            "default": services.default_model_for(request.user),
        }
    )


def _model_state(workers: list[dict], name: str) -> str:
    states = {w.get("state") for w in workers if w.get("model") == name}
    for state in ("ready", "loading", "failed"):
        if state in states:
            return state
    return "no_worker"
