"""Users in the admin, with their two-step verification status and the actions admins need.

Keys and codes are never shown: devices are not editable here, and django-otp's own device
admins hide sensitive data (OTP_ADMIN_HIDE_SENSITIVE_DATA).
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import render

from accounts import services
from accounts.forms import ResetTwoFactorForm
from accounts.models import BackupCode
from accounts.roles import EMPLOYEES

User = get_user_model()
admin.site.unregister(User)


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
    actions = ["reset_two_factor", "deactivate"]

    def get_readonly_fields(self, request, obj=None):
        """Only a superuser grants superuser status or single permissions; nobody changes
        their own roles or status here (another admin must, and it is audited)."""
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        if obj is not None and obj.pk == request.user.pk:
            readonly += ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]
        return list(dict.fromkeys(readonly))

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
        form = ResetTwoFactorForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            for user in queryset:
                services.reset_two_factor(
                    actor=request.user, user=user, reason=form.cleaned_data["reason"]
                )
            self.message_user(
                request,
                f"Two-step verification reset for {queryset.count()} user(s); they set it up "
                "again at their next sign-in and were signed out everywhere.",
                messages.SUCCESS,
            )
            return None
        return render(
            request,
            "admin/accounts/reset_two_factor.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reset two-step verification",
                "users": queryset,
                "form": form,
                "opts": self.opts,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(
        description="Deactivate the selected users and sign them out", permissions=["change"]
    )
    def deactivate(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True).exclude(pk=request.user.pk):
            services.deactivate_user(actor=request.user, user=user)
            count += 1
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)
