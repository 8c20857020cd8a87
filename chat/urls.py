from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("api/conversations", views.conversation_list, name="conversations"),
    path("api/conversations/<uuid:conversation_id>", views.conversation_detail, name="detail"),
    path(
        "api/conversations/<uuid:conversation_id>/rename",
        views.conversation_rename,
        name="rename",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/delete",
        views.conversation_delete,
        name="delete",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/version",
        views.conversation_show_version,
        name="show_version",
    ),
    path(
        "conversations/<uuid:conversation_id>/export.md",
        views.conversation_export,
        {"export_format": "md"},
        name="export_md",
    ),
    path(
        "conversations/<uuid:conversation_id>/export.json",
        views.conversation_export,
        {"export_format": "json"},
        name="export_json",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/settings",
        views.conversation_settings,
        name="settings",
    ),
    *(
        path(
            f"api/conversations/<uuid:conversation_id>/{action}",
            views.conversation_flag,
            {"action": action},
            name=action,
        )
        for action in views.FLAGS
    ),
    path("api/search", views.conversation_search, name="search"),
    path("api/presets", views.presets, name="presets"),
    path("api/presets/<uuid:preset_id>/delete", views.preset_delete, name="preset_delete"),
    path("api/status", views.worker_status, name="status"),
]
