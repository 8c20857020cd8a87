from django.urls import path

from accounts import oidc, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("", views.account, name="account"),
    path("backup-codes/", views.regenerate_backup_codes, name="backup_codes"),
    path("your-data/", views.download_your_data, name="your_data"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("logout/", views.sign_out, name="logout"),
    path("oidc/start/", oidc.StartSignIn.as_view(), name="oidc_start"),
    path("oidc/callback/", oidc.FinishSignIn.as_view(), name="oidc_callback"),
]
