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
from chat import conversation_search as chat_search
from chat import conversation_settings as chat_settings
from chat import exports, model_choice, search, services
from chat.inference import registry
from chat.inference.params import MAX_TEMPERATURE
from core.json_input import JSONInputError, parse_json

TITLE_BODY_MAX = 4096
# Settings and presets: instructions at their longest in the worst case of JSON escaping.
SETTINGS_BODY_MAX = chat_settings.INSTRUCTIONS_MAX * 6 + 1024


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
        {
            "ws_path": "/ws/chat/",
            "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
            "max_instructions_chars": chat_settings.INSTRUCTIONS_MAX,
            "max_temperature": MAX_TEMPERATURE,
            "max_answer_tokens": settings.LLM_MAX_NEW_TOKENS,
            "max_document_bytes": settings.DOCUMENTS_MAX_FILE_BYTES,
        },
    )


@never_cache
@require_GET
@employees_only
def conversation_list(request):
    """One page of the list: ?archived=1 for the archived ones, ?after=<cursor> for the page
    after, ?limit=<n> (at most PAGE_SIZE_MAX) for its length."""
    services.fail_stale_answers(actor=request.user, request=request)
    try:
        limit = int(request.GET.get("limit", services.PAGE_SIZE))
    except ValueError:
        limit = 0
    if not 1 <= limit <= services.PAGE_SIZE_MAX:
        return _error(
            400, "bad_request", f"`limit` must be a number from 1 to {services.PAGE_SIZE_MAX}."
        )
    try:
        page = services.conversation_page(
            request.user,
            archived=request.GET.get("archived") == "1",
            after=request.GET.get("after"),
            limit=limit,
        )
    except services.BadCursor as error:
        return _error(400, "bad_request", str(error))
    return JsonResponse(
        {
            "conversations": [services.conversation_as_item(c) for c in page.conversations],
            "next": page.next,
        }
    )


FLAGS = {"pin": ("pinned", True), "unpin": ("pinned", False)}
FLAGS.update({"archive": ("archived", True), "unarchive": ("archived", False)})


@require_POST
@employees_only
def conversation_flag(request, conversation_id, action):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    flag, value = FLAGS[action]
    services.set_flag(
        actor=request.user, conversation=conversation, flag=flag, value=value, request=request
    )
    return JsonResponse(services.conversation_as_item(conversation))


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
            **services.origin_as_dict(conversation),
            "messages": exports.thread_as_dicts(conversation),
            "settings": chat_settings.settings_as_dict(conversation),
        }
    )


def _invalid(error: chat_settings.SettingsInvalid) -> JsonResponse:
    """400 with a sentence for each field, for the page to show next to it."""
    return JsonResponse(
        {"error": {"code": "invalid", "detail": str(error), "fields": error.errors}}, status=400
    )


@require_POST
@employees_only
def conversation_settings(request, conversation_id):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    body, error = _json_object(request, SETTINGS_EXAMPLE)
    if error:
        return error
    try:
        values = chat_settings.clean_settings(body)
    except chat_settings.SettingsInvalid as invalid:
        return _invalid(invalid)
    chat_settings.change_settings(
        actor=request.user, conversation=conversation, values=values, request=request
    )
    return JsonResponse({"settings": chat_settings.settings_as_dict(conversation)})


@never_cache
@employees_only
def presets(request):
    """GET: the user's presets; POST: save one (a preset of the same name is replaced)."""
    if request.method == "POST":
        body, error = _json_object(request, '{"name": "Short answers", ' + SETTINGS_EXAMPLE[1:])
        if error:
            return error
        name = body.pop("name", None)
        try:
            values = chat_settings.clean_settings(body)
            preset = chat_settings.save_preset(
                actor=request.user, name=name, values=values, request=request
            )
        except chat_settings.SettingsInvalid as invalid:
            return _invalid(invalid)
        return JsonResponse({"preset": chat_settings.preset_as_dict(preset)})
    if request.method != "GET":
        return _error(405, "method_not_allowed", "Use GET or POST.")
    return JsonResponse(
        {
            "presets": [
                chat_settings.preset_as_dict(p) for p in chat_settings.presets_of(request.user)
            ]
        }
    )


@require_POST
@employees_only
def preset_delete(request, preset_id):
    try:
        chat_settings.delete_preset(actor=request.user, preset_id=preset_id, request=request)
    except LookupError as error:
        return _error(404, "not_found", str(error))
    return JsonResponse({"deleted": str(preset_id)})


SETTINGS_EXAMPLE = '{"instructions": "Answer briefly.", "temperature": 0.7, "max_new_tokens": 256}'


def _json_object(request, example: str):
    """The request's JSON object body, or a 400 response saying what to send."""
    if len(request.body) > SETTINGS_BODY_MAX:
        return None, _error(400, "too_large", "That request is too large.")
    try:
        body = parse_json(request.body)
    except JSONInputError as error:
        return None, _error(400, "bad_request", f"{error} Send JSON like {example}.")
    if not isinstance(body, dict):
        return None, _error(400, "bad_request", f"Send JSON like {example}.")
    return body, None


@require_POST
@employees_only
def conversation_show_version(request, conversation_id):
    """Show another version of a message; answers with the conversation as it then reads."""
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    body, error = _json_object(request, '{"message": "<message id>"}')
    if error:
        return error
    try:
        services.show_version(
            actor=request.user,
            conversation=conversation,
            message_id=body.get("message"),
            request=request,
        )
    except services.MessageNotFound:
        return _error(404, "not_found", "That version is not in this conversation any more.")
    except services.GenerationInProgress:
        return _error(
            409,
            "generation_in_progress",
            "An answer is still being written in this conversation; wait or stop it first.",
        )
    conversation.refresh_from_db()
    return JsonResponse(
        {
            "id": str(conversation.pk),
            "title": conversation.title,
            "model": conversation.model_name,
            **services.origin_as_dict(conversation),
            "messages": exports.thread_as_dicts(conversation),
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
    try:
        services.delete(actor=request.user, conversation=conversation, request=request)
    except services.ConversationHeld as exc:
        return _error(409, "held", str(exc))
    return JsonResponse({"deleted": str(conversation_id)})


@never_cache
@require_GET
@employees_only
def conversation_export(request, conversation_id, export_format):
    try:
        conversation = services.conversation_of(request.user, conversation_id)
    except services.ConversationNotFound:
        return _not_found(request, conversation_id)
    content_type, body = exports.export(
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
    allowed = model_choice.models_for(request.user)
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
            "default": model_choice.default_model_for(request.user),
        }
    )


def _model_state(workers: list[dict], name: str) -> str:
    states = {w.get("state") for w in workers if w.get("model") == name}
    for state in ("ready", "loading", "failed"):
        if state in states:
            return state
    return "no_worker"


@never_cache
@require_POST
@employees_only
def conversation_search(request):
    """The user's own conversations holding every word typed. POST, so the words stay out of
    addresses and access logs; nothing of the query is stored."""
    body, error = _json_object(request, '{"q": "words to find"}')
    if error:
        return error
    try:
        query = search.Query.parse(body.get("q"))
    except search.QueryInvalid as invalid:
        return _error(400, "bad_request", str(invalid))
    return JsonResponse(chat_search.search(request.user, query))
