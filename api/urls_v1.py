"""The OpenAI-compatible endpoints, served by api.middleware under /v1/."""

from django.urls import path

from api import views

urlpatterns = [
    path("v1/models", views.models, name="models"),
    path("v1/models/<path:name>", views.model, name="model"),
    path("v1/chat/completions", views.chat_completions, name="chat_completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
]
