"""The audit log in the admin: read-only browsing, filtered export and chain verification.

Viewing is itself audited (one audit.viewed event per page, not per row), as are exports
and verifications. Only members of the Compliance group see it at all (audit.access: a
permission an admin could grant is not enough, and a superuser must be a member too).
Nobody, superusers included, can add, change or delete an event here.
"""

import datetime
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from audit import export
from audit.access import NOT_A_READER, may_read_audit_log
from audit.chain import verify
from audit.log import record
from audit.models import AuditEvent

QUERY_LOGGED_MAX = 500


class ActorFilter(admin.SimpleListFilter):
    """The usernames that appear in the log, as they were when each event happened."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        names = (
            AuditEvent.objects.exclude(actor_username="")
            .order_by("actor_username")
            .values_list("actor_username", flat=True)
            .distinct()[:200]
        )
        return [("-", "anonymous or system"), *((name, name) for name in names)]

    def queryset(self, request, queryset):
        if self.value() == "-":
            return queryset.filter(actor_username="")
        if self.value():
            return queryset.filter(actor_username=self.value())
        return queryset


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct()
        return [(action, action) for action in actions]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "sequence",
        "time_utc",
        "action",
        "outcome",
        "actor_username",
        "target",
        "source_ip",
    )
    list_display_links = ("sequence", "action")
    list_filter = (ActionFilter, "outcome", ActorFilter, "created_at")
    date_hierarchy = "created_at"
    search_fields = ("actor_username", "source_ip", "target")
    list_per_page = 100
    show_full_result_count = False
    actions = None
    fieldsets = (
        ("What", {"fields": ("action", "outcome", "target", "details_pretty")}),
        ("Who and when", {"fields": ("created_at", "actor_username", "actor_id")}),
        ("From where", {"fields": ("source_ip", "user_agent", "request_id")}),
        ("Integrity", {"fields": ("sequence", "prev_hash", "hash", "key_id")}),
    )
    readonly_fields = (
        "action",
        "outcome",
        "target",
        "details_pretty",
        "created_at",
        "actor_username",
        "actor_id",
        "source_ip",
        "user_agent",
        "request_id",
        "sequence",
        "prev_hash",
        "hash",
        "key_id",
    )

    @admin.display(description="time (UTC)", ordering="created_at")
    def time_utc(self, event):
        return event.created_at.strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="details")
    def details_pretty(self, event):
        return format_html(
            '<pre class="audit-details">{}</pre>',
            json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
        )

    def has_module_permission(self, request):
        return may_read_audit_log(request.user)

    def has_view_permission(self, request, obj=None):
        return may_read_audit_log(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "export/<str:export_format>/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "verify/",
                self.admin_site.admin_view(self.verify_view),
                name="{}_{}_verify".format(*info),
            ),
            *super().get_urls(),
        ]

    def _require_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied(NOT_A_READER)

    def changelist_view(self, request, extra_context=None):
        self._require_view(request)
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            record("audit.viewed", request=request, page="list", query=self._query(request))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_view(request)
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            record(
                "audit.viewed",
                request=request,
                page="detail",
                target=f"audit.auditevent:{object_id}",
            )
        return response

    @staticmethod
    def _query(request) -> str:
        return request.GET.urlencode()[:QUERY_LOGGED_MAX]

    def export_view(self, request, export_format):
        self._require_view(request)
        if export_format not in export.FORMATS:
            raise Http404("Unknown export format.")
        changelist = self.get_changelist_instance(request)
        events = changelist.get_queryset(request).order_by("sequence")
        # The export's own event comes after this snapshot and is not part of the file.
        last = events.values_list("sequence", flat=True).last()
        if last is not None:
            events = events.filter(sequence__lte=last)
        rows = events.count()
        record(
            "audit.exported",
            request=request,
            format=export_format,
            query=self._query(request),
            rows=rows,
            via="admin",
        )
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            export.lines(events.iterator(chunk_size=2000), export_format),
            content_type=export.FORMATS[export_format],
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{export_format}"'
        return response

    def verify_view(self, request):
        self._require_view(request)
        verdict = None
        if request.method == "POST":
            verdict = verify()
            record(
                "audit.verified",
                request=request,
                outcome=AuditEvent.Outcome.SUCCESS if verdict.intact else "failure",
                checked=verdict.checked,
                first_bad_sequence=verdict.sequence,
                via="admin",
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Verify the audit chain",
            "verdict": verdict,
        }
        return TemplateResponse(request, "admin/audit/verify.html", context)
