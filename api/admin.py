"""Tokens and their usage in the admin: listed and revoked, never created or edited here
(a token is made by its owner, with a fresh second factor, or by an operator's command).

Members of Admins may: the role has view and change (revoke) of tokens and view of usage
(given in api.apps); superusers have them anyway. Revoking is the only change there is."""

from django.contrib import admin, messages

from api import services
from api.models import ApiToken, ApiUsage


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "name",
        "user",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_from",
        "state",
    )
    list_filter = ("revoked_at",)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = [field.name for field in ApiToken._meta.fields if field.name != "digest"]
    exclude = ("digest",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The change permission is for the revoke action; a token's own page is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        # Revoked, not deleted: the usage and the audit log keep pointing at it.
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = sum(
            services.revoke_api_token(
                actor=request.user, token=token, reason="by_admin", request=request
            )
            for token in queryset.select_related("user")
        )
        messages.success(request, f"{revoked} token(s) revoked.")


@admin.register(ApiUsage)
class ApiUsageAdmin(admin.ModelAdmin):
    list_display = (
        "day",
        "user",
        "token",
        "model_name",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    )
    list_filter = ("day", "model_name")
    search_fields = ("user__username", "token__name", "token__prefix")
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
