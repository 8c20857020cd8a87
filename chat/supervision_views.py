"""Pages of supervised access: requests and decisions, the read-only reading, and the
account page's notice to the user. The rules live in chat.supervision."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from chat import supervision
from chat.supervision import SupervisionError

NOT_INVOLVED = (
    "Supervised access is for members of Compliance, who ask to read a user's conversations, "
    f"and of {settings.SUPERVISED_ACCESS_APPROVERS}, who approve or refuse. Ask a superuser "
    "if your work needs either."
)


class AccessRequestForm(forms.Form):
    username = forms.CharField(label="User whose conversations you need to read", max_length=150)
    justification = forms.CharField(
        label="Why",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=supervision.JUSTIFICATION_MAX,
        help_text="The case and why reading these conversations is needed. The approver "
        "decides on it; the user reads it once the access has ended.",
    )
    hours = forms.IntegerField(
        label="For how many hours",
        min_value=1,
        max_value=settings.SUPERVISED_ACCESS_MAX_HOURS,
        initial=4,
        help_text="Counted from the approval.",
    )


class RefusalForm(forms.Form):
    reason = forms.CharField(max_length=supervision.REFUSAL_REASON_MAX)


def _involved_only(user) -> None:
    if not (supervision.may_request(user) or supervision.may_approve(user)):
        raise PermissionDenied(NOT_INVOLVED)


def _home(request, form, status=200):
    user = request.user
    return render(
        request,
        "chat/supervision/home.html",
        {
            "form": form,
            "may_request": supervision.may_request(user),
            "may_approve": supervision.may_approve(user),
            "approvers_group": settings.SUPERVISED_ACCESS_APPROVERS,
            "own_requests": supervision.requests_by(user),
            "awaiting": supervision.awaiting_decision_by(user),
        },
        status=status,
    )


@never_cache
@require_GET
def home(request):
    _involved_only(request.user)
    return _home(request, AccessRequestForm())


@never_cache
@require_POST
def ask(request):
    _involved_only(request.user)
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        return _home(request, form, status=400)
    try:
        access = supervision.request_access(
            actor=request.user,
            subject_username=form.cleaned_data["username"],
            justification=form.cleaned_data["justification"],
            hours=form.cleaned_data["hours"],
            request=request,
        )
    except SupervisionError as error:
        form.add_error(None, str(error))
        return _home(request, form, status=400)
    messages.success(
        request,
        f"Your request to read {access.subject.get_username()}'s conversations waits for an "
        f"approver from {settings.SUPERVISED_ACCESS_APPROVERS}.",
    )
    return redirect("supervision:home")


@never_cache
@require_POST
def approve(request, access_id):
    _involved_only(request.user)
    try:
        access = supervision.approve(actor=request.user, access_id=access_id, request=request)
    except SupervisionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"Approved: {access.requested_by.get_username()} may read "
            f"{access.subject.get_username()}'s conversations for {access.hours} hours.",
        )
    return redirect("supervision:home")


@never_cache
@require_POST
def refuse(request, access_id):
    _involved_only(request.user)
    form = RefusalForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        supervision.refuse(actor=request.user, access_id=access_id, reason=reason, request=request)
    except SupervisionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Refused. The requester sees your reason.")
    return redirect("supervision:home")


@never_cache
@require_GET
def conversations(request, access_id):
    try:
        access, found = supervision.read_conversations(
            actor=request.user, access_id=access_id, request=request
        )
    except SupervisionError as error:
        raise PermissionDenied(str(error)) from None
    return render(
        request,
        "chat/supervision/conversations.html",
        {"access": access, "conversations": found},
    )


@never_cache
@require_GET
def conversation(request, access_id, conversation_id):
    try:
        access, found, found_messages = supervision.read_conversation(
            actor=request.user,
            access_id=access_id,
            conversation_id=conversation_id,
            request=request,
        )
    except SupervisionError as error:
        raise PermissionDenied(str(error)) from None
    return render(
        request,
        "chat/supervision/conversation.html",
        {"access": access, "conversation": found, "chat_messages": found_messages},
    )


def account_section(request) -> str:
    """For the account page: when and why the user's conversations were read, once each
    reading window has ended, and a link for those who take part in supervised access."""
    user = request.user
    return render_to_string(
        "chat/supervision/_account_section.html",
        {
            "ended": supervision.ended_accesses_of(user),
            "involved": supervision.may_request(user) or supervision.may_approve(user),
        },
        request=request,
    )
