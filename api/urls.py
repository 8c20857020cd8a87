from django.urls import path

from api import views_tokens

app_name = "api"

urlpatterns = [
    path("", views_tokens.tokens, name="tokens"),
    path("passkey-challenge", views_tokens.passkey_challenge, name="passkey_challenge"),
    path("<int:token_id>/revoke", views_tokens.revoke, name="revoke"),
]
