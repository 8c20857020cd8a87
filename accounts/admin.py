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

from accounts import erasure, services, your_data
from accounts.forms import DataRequestForm, EraseUserForm, ResetTwoFactorForm
from accounts.models import BackupCode, DirectoryAccount, LegalHold, SignInSession
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


class DirectoryAccountInline(admin.StackedInline):
    """Where a directory account comes from. Its role groups are set from the directory at
    every sign-in and by sync_directory, so a change made here lasts until then."""

    model = DirectoryAccount
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name = "company directory account"
    fields = readonly_fields = ("source", "subject", "created_at", "last_sign_in_at")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    def get_inlines(self, request, obj):
        # Only on an account that came from the directory: forms stay as they were for others.
        if obj is not None and DirectoryAccount.objects.filter(user=obj).exists():
            return [DirectoryAccountInline]
        return []

    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "two_factor",
        "backup_codes_left",
        "last_login",
        "legal_hold",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "groups", "directory_account__source")
    actions = ["reset_two_factor", "unlock_sign_in", "deactivate", "erase", "download_user_data"]

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
        # Deleting destroys a user's data keys: not while a legal hold is in place.
        return super().has_delete_permission(request, obj) and (
            obj is None or (may_manage(request.user, obj) and not erasure.holds_in_place(obj))
        )

    def delete_queryset(self, request, queryset):
        held = [user for user in queryset if erasure.holds_in_place(user)]
        if held:
            names = ", ".join(user.get_username() for user in held)
            raise PermissionDenied(
                f"Nothing was deleted: {names} {'is' if len(held) == 1 else 'are'} under a "
                "legal hold until Compliance lifts it."
            )
        super().delete_queryset(request, queryset)

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
        if user is not None and request.method == "GET":
            for hold in erasure.holds_in_place(user):
                self.message_user(
                    request,
                    f"Legal hold in place for {user.get_username()} (case "
                    f"{hold.case_reference}, placed {hold.placed_at:%Y-%m-%d}): nothing of theirs can be erased, by "
                    "retention or by anyone, until Compliance lifts it.",
                    messages.WARNING,
                )
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
                holds_in_place=Count(
                    "legal_holds", filter=Q(legal_holds__lifted_at__isnull=True), distinct=True
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

    @admin.display(description="legal hold", ordering="holds_in_place")
    def legal_hold(self, user):
        return "in place" if user.holds_in_place else ""

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

    @admin.action(
        description="Erase the selected users and everything they stored (final)",
        permissions=["change"],
    )
    def erase(self, request, queryset):
        candidates = queryset.exclude(pk=request.user.pk).exclude(username__startswith="erased-")
        users, refused = _split_by_manageable(request, candidates)
        held = [user for user in users if erasure.holds_in_place(user)]
        users = [user for user in users if user not in held]
        form = EraseUserForm(request.POST if "confirm" in request.POST else None)
        if users and form.is_valid():
            for user in users:
                erasure.erase_user(
                    actor=request.user,
                    user=user,
                    reason=form.cleaned_data["reason"],
                    request=request,
                )
            self.message_user(
                request,
                f"Erased {len(users)} user(s): their content is gone, in every backup too once "
                "the key archives made before now have expired.",
                messages.SUCCESS,
            )
            if held:
                names = ", ".join(user.get_username() for user in held)
                self.message_user(
                    request, f"Skipped {names}: under a legal hold.", messages.WARNING
                )
            _warn_skipped(self, request, refused)
            return None
        return render(
            request,
            "admin/accounts/erase_user.html",
            {
                **self.admin_site.each_context(request),
                "title": "Erase users",
                "users": users,
                "held": held,
                "skipped": refused,
                "form": form,
                "opts": self.opts,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(
        description="Download the selected user's data (on their request)", permissions=["change"]
    )
    def download_user_data(self, request, queryset):
        users, refused = _split_by_manageable(request, queryset)
        if len(users) != 1:
            self.message_user(
                request,
                "Select exactly one user whose data you may manage: each archive answers one "
                "person's request.",
                messages.WARNING,
            )
            _warn_skipped(self, request, refused)
            return None
        (subject,) = users
        form = DataRequestForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            archive = your_data.export_user_data(
                actor=request.user,
                user=subject,
                request=request,
                reason=form.cleaned_data["reason"],
            )
            return your_data.as_download(archive, subject)
        return render(
            request,
            "admin/accounts/user_data.html",
            {
                **self.admin_site.each_context(request),
                "title": f"The data of {subject.get_username()}",
                "subject": subject,
                "form": form,
                "opts": self.opts,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Legal holds, for Compliance only: place one (Add) and lift it (the action). A hold is
    never edited or deleted; lifted ones stay listed."""

    list_display = ("user", "case_reference", "placed_at", "placed_by", "lifted_at", "lifted_by")
    list_filter = (("lifted_at", admin.EmptyFieldListFilter),)
    search_fields = ("case_reference", "user__username")
    fields = ("user", "case_reference")
    actions = ["lift"]

    def has_module_permission(self, request):
        return erasure.is_compliance(request.user)

    def has_view_permission(self, request, obj=None):
        return erasure.is_compliance(request.user)

    def has_add_permission(self, request):
        return erasure.is_compliance(request.user)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        try:
            hold = erasure.place_legal_hold(
                actor=request.user,
                user=obj.user,
                case_reference=obj.case_reference,
                request=request,
            )
        except ValueError as exc:
            raise PermissionDenied(str(exc)) from None
        obj.pk, obj.placed_at, obj.placed_by = hold.pk, hold.placed_at, hold.placed_by

    @admin.action(description="Lift the selected legal holds")
    def lift(self, request, queryset):
        lifted = 0
        for hold in queryset.filter(lifted_at__isnull=True):
            erasure.lift_legal_hold(actor=request.user, hold=hold, request=request)
            lifted += 1
        self.message_user(
            request,
            f"Lifted {lifted} legal hold(s); what they held follows retention and erasure again.",
            messages.SUCCESS,
        )


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
