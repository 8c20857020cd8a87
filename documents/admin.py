"""Collections in the admin: admins create them and choose which groups may read and add.

Who may is Django's model permissions: the Admins role has every permission on collections
and their grants (given in documents.apps), superusers have them all, nobody else any.
Documents themselves are not in the admin at all: an admin cannot list, open or download
anyone's personal documents, and sees only how many documents a collection holds.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import Count
from django.shortcuts import redirect
from django.urls import reverse

from documents import services
from documents.models import Collection, CollectionGrant


class GrantInline(admin.TabularInline):
    model = CollectionGrant
    extra = 1
    verbose_name = "group with access"
    verbose_name_plural = "other groups with access"


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "owner_group", "document_count", "created_at"]
    fields = ["name", "owner_group"]
    inlines = [GrantInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(document_total=Count("documents"))

    @admin.display(description="documents", ordering="document_total")
    def document_count(self, collection):
        return collection.document_total

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        created = services.create_collection(
            actor=request.user, name=obj.name, owner_group=obj.owner_group, request=request
        )
        obj.pk = created.pk
        obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        """Grants go through the services, so each is audited."""
        grants = formset.save(commit=False)
        for grant in formset.deleted_objects:
            services.revoke(
                actor=request.user, collection=grant.collection, group=grant.group, request=request
            )
        for grant in grants:
            if (
                grant.pk is not None
                and grant.group_id != grant.__class__.objects.get(pk=grant.pk).group_id
            ):
                old = grant.__class__.objects.get(pk=grant.pk)
                services.revoke(
                    actor=request.user, collection=old.collection, group=old.group, request=request
                )
                grant.__class__.objects.filter(pk=grant.pk).delete()
            services.grant(
                actor=request.user,
                collection=form.instance,
                group=grant.group,
                can_read=grant.can_read,
                can_add=grant.can_add,
                request=request,
            )
        formset.new_objects, formset.changed_objects = [], []

    def delete_view(self, request, object_id, extra_context=None):
        """A collection holding documents under a legal hold is not deleted: said, not a 500."""
        collection = self.get_object(request, unquote(object_id))
        if collection is not None and services.collection_held(collection):
            messages.error(request, services.HELD_IN_COLLECTION)
            return redirect(reverse("admin:documents_collection_change", args=[collection.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        services.delete_collection(actor=request.user, collection=obj, request=request)

    def delete_queryset(self, request, queryset):
        for collection in queryset:
            try:
                services.delete_collection(
                    actor=request.user, collection=collection, request=request
                )
            except services.DocumentHeld as exc:
                messages.error(request, f"{collection.name}: {exc}")
