from django.urls import path

from api import views_tokens

app_name = "api"

urlpatterns = [
    path("", views_tokens.tokens, name="tokens"),
    path("<int:token_id>/revoke", views_tokens.revoke, name="revoke"),
]
