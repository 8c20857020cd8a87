"""Users and groups in the admin, with each user's two-step verification status and the
actions admins need.

Nobody can use the admin to gain rights: a non-superuser admin manages only accounts whose
rights are a subset of their own (accounts.roles.may_manage), assigns only groups that give no
right they lack, and role groups are read-only for everyone.

Keys and codes are never shown: devices are not editable here, and django-otp's own device
admins hide sensitive data (OTP_ADMIN_HIDE_SENSITIVE_DATA).
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import render
from django_otp_webauthn.models import WebAuthnCredential

from accounts import services
from accounts.forms import ResetTwoFactorForm
from accounts.models import BackupCode, SignInSession
from accounts.roles import (
    EMPLOYEES,
    ROLE_GROUP_READ_ONLY,
    assignable_groups,
    group_rights,
    is_role_group,
    may_manage,
    may_not_manage_reason,
    rights,
)
from accounts.user_agent import browser_and_system

User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


def _split_by_manageable(request, queryset):
    """The users of ``queryset`` the admin may manage, and a warning naming the others."""
    allowed, refused = [], []
    for user in queryset:
        (allowed if may_manage(request.user, user) else refused).append(user)
    return allowed, refused


def _warn_skipped(model_admin, request, refused) -> None:
    if refused:
        names = ", ".join(user.get_username() for user in refused)
        model_admin.message_user(
            request,
            f"Skipped {names}: only a superuser can change them, as they have rights you do "
            "not. Ask a superuser to do it.",
            messages.WARNING,
        )


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "two_factor",
        "backup_codes_left",
        "last_login",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    actions = ["reset_two_factor", "unlock_sign_in", "deactivate"]

    def get_readonly_fields(self, request, obj=None):
        """Only a superuser grants superuser status or single permissions; nobody changes
        their own roles or status here (another admin must, and it is audited)."""
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        if obj is not None and obj.pk == request.user.pk:
            readonly += ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]
        return list(dict.fromkeys(readonly))

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or may_manage(request.user, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (
            obj is None or may_manage(request.user, obj)
        )

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name == "groups" and request is not None:
            kwargs["queryset"] = assignable_groups(request.user, Group.objects.all())
        return super().formfield_for_manytomany(db_field, request=request, **kwargs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is not None and not may_manage(request.user, user):
            if request.method == "POST":
                raise PermissionDenied(may_not_manage_reason(user))
            self.message_user(request, may_not_manage_reason(user), messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def user_change_password(self, request, id, form_url=""):
        user = self.get_object(request, unquote(id))
        if user is not None and not may_manage(request.user, user):
            raise PermissionDenied(may_not_manage_reason(user))
        return super().user_change_password(request, id, form_url)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if not change:
            # A new account can chat, as one made with `manage.py createuser` can.
            form.instance.groups.add(Group.objects.get(name=EMPLOYEES))

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                enrolled_at=Max("totpdevice__created_at", filter=Q(totpdevice__confirmed=True)),
                codes_left=Coalesce(
                    Subquery(
                        BackupCode.objects.filter(device__user=OuterRef("pk"), used_at__isnull=True)
                        .values("device__user")
                        .annotate(left=Count("pk"))
                        .values("left")
                    ),
                    0,
                ),
            )
        )

    @admin.display(description="two-step verification", ordering="enrolled_at")
    def two_factor(self, user):
        if user.enrolled_at is None:
            return "not set up"
        return f"set up {user.enrolled_at:%Y-%m-%d}"

    @admin.display(description="backup codes left", ordering="codes_left")
    def backup_codes_left(self, user):
        return user.codes_left

    @admin.action(
        description="Reset two-step verification of the selected users", permissions=["change"]
    )
    def reset_two_factor(self, request, queryset):
        users, refused = _split_by_manageable(request, queryset)
        if not users:
            _warn_skipped(self, request, refused)
            return None
        form = ResetTwoFactorForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            for user in users:
                services.reset_two_factor(
                    actor=request.user, user=user, reason=form.cleaned_data["reason"]
                )
            self.message_user(
                request,
                f"Two-step verification reset for {len(users)} user(s); they set it up "
                "again at their next sign-in and were signed out everywhere.",
                messages.SUCCESS,
            )
            _warn_skipped(self, request, refused)
            return None
        return render(
            request,
            "admin/accounts/reset_two_factor.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reset two-step verification",
                "users": users,
                "skipped": refused,
                "form": form,
                "opts": self.opts,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Unlock sign-in of the selected users", permissions=["change"])
    def unlock_sign_in(self, request, queryset):
        users, refused = _split_by_manageable(request, queryset)
        for user in users:
            services.unlock_sign_in(actor=request.user, user=user)
        self.message_user(
            request,
            f"Sign-in unlocked for {len(users)} user(s); they can sign in again now.",
            messages.SUCCESS,
        )
        _warn_skipped(self, request, refused)

    @admin.action(
        description="Deactivate the selected users and sign them out", permissions=["change"]
    )
    def deactivate(self, request, queryset):
        users, refused = _split_by_manageable(
            request, queryset.filter(is_active=True).exclude(pk=request.user.pk)
        )
        for user in users:
            services.deactivate_user(actor=request.user, user=user)
        self.message_user(request, f"Deactivated {len(users)} user(s).", messages.SUCCESS)
        _warn_skipped(self, request, refused)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Groups of the organisation's own next to the role groups, which only the application
    changes (accounts/roles.py). A non-superuser gives a group only permissions they have."""

    def _may_change(self, request, group) -> bool:
        if is_role_group(group):
            return False
        return request.user.is_superuser or group_rights(group) <= rights(request.user)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or self._may_change(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (
            obj is None or self._may_change(request, obj)
        )

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name == "permissions" and request is not None and not request.user.is_superuser:
            actor = request.user
            kwargs["queryset"] = Permission.objects.filter(
                Q(user=actor) | Q(group__user=actor)
            ).distinct()
        return super().formfield_for_manytomany(db_field, request=request, **kwargs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        group = self.get_object(request, unquote(object_id))
        if group is not None and not self._may_change(request, group):
            if is_role_group(group):
                reason = ROLE_GROUP_READ_ONLY.format(name=group.name)
            else:
                reason = (
                    f"Only a superuser can change {group.name}: it gives rights you do not have."
                )
            if request.method == "POST":
                raise PermissionDenied(reason)
            self.message_user(request, reason, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)


class _UserManagersOnly:
    """Visible to whoever may change users; read-only: changes go through the users' actions
    (which audit them), never by editing rows."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.has_perm("auth.change_user")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebAuthnCredential)
class PasskeyAdmin(_UserManagersOnly, admin.ModelAdmin):
    """Every user's passkeys (names, when added and last used, sign counts), for admins; the
    public keys are not shown. "Reset two-step verification" on a user removes them."""

    list_display = ("user", "name", "created_at", "last_used_at", "sign_count")
    search_fields = ("user__username", "name")
    list_select_related = ("user",)
    fields = ("user", "name", "created_at", "last_used_at", "sign_count", "backup_state")
    readonly_fields = fields


@admin.register(SignInSession)
class SignInSessionAdmin(_UserManagersOnly, admin.ModelAdmin):
    """Every signed-in session, for admins to end a stolen one at once (its websockets
    close too). Whoever may change users may see and end their sessions, through the action,
    which audits session.ended."""

    list_display = ("user", "browser", "ip_address", "started_at", "last_seen_at")
    list_filter = ("started_at", "last_seen_at")
    search_fields = ("user__username", "ip_address")
    list_select_related = ("user",)
    actions = ["end_sessions"]
    fields = ("user", "browser", "ip_address", "started_at", "last_seen_at", "user_agent")
    readonly_fields = fields

    @admin.display(description="browser and system")
    def browser(self, session):
        return browser_and_system(session.user_agent)

    def has_end_permission(self, request):
        return self.has_view_permission(request)

    @admin.action(description="Sign out the selected sessions", permissions=["end"])
    def end_sessions(self, request, queryset):
        users, refused = _split_by_manageable(
            request, User.objects.filter(pk__in=queryset.values("user"))
        )
        ended = 0
        for session in queryset.filter(user__in=users).select_related("user"):
            ended += services.end_session(
                actor=request.user, user=session.user, session_id=session.pk
            )
        self.message_user(
            request,
            f"Signed out {ended} session(s); their open chat windows closed.",
            messages.SUCCESS,
        )
        _warn_skipped(self, request, refused)
