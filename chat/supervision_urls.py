from django.urls import path

from chat import supervision_views as views

app_name = "supervision"

urlpatterns = [
    path("", views.home, name="home"),
    path("request", views.ask, name="request"),
    path("<uuid:access_id>/approve", views.approve, name="approve"),
    path("<uuid:access_id>/refuse", views.refuse, name="refuse"),
    path("<uuid:access_id>/", views.conversations, name="conversations"),
    path(
        "<uuid:access_id>/conversations/<uuid:conversation_id>",
        views.conversation,
        name="conversation",
    ),
]
