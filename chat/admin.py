"""Which groups may use which model: one row per restricted model, kept by admins."""

from django.contrib import admin
from django.db import transaction

from audit.log import record
from chat import model_choice
from chat.models import ModelAccess


@admin.register(ModelAccess)
class ModelAccessAdmin(admin.ModelAdmin):
    list_display = ("model_name", "group_names")
    filter_horizontal = ("groups",)
    search_fields = ("model_name",)

    @admin.display(description="groups (none: everyone)")
    def group_names(self, access):
        return ", ".join(group.name for group in access.groups.all()) or "everyone"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        served = ", ".join(model_choice.served_models()) or "none right now"
        form.base_fields["model_name"].help_text += f" Served now: {served}."
        return form

    def save_related(self, request, form, formsets, change):
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            access = form.instance
            record(
                "model_access.changed",
                actor=request.user,
                request=request,
                model=access.model_name,
                groups=sorted(access.groups.values_list("name", flat=True)),
            )

    def delete_model(self, request, access):
        with transaction.atomic():
            record(
                "model_access.changed",
                actor=request.user,
                request=request,
                model=access.model_name,
                groups=[],
            )
            super().delete_model(request, access)

    def delete_queryset(self, request, queryset):
        for access in queryset:
            self.delete_model(request, access)
