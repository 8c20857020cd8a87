from django.urls import path
from django.views.i18n import JavaScriptCatalog

from accounts import oidc, passkeys, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("verify/", views.verify, name="verify"),
    path("enrol/", views.enrol, name="enrol"),
    path("", views.account, name="account"),
    path("step-up/", views.step_up, name="step_up"),
    path("backup-codes/", views.regenerate_backup_codes, name="backup_codes"),
    path("your-data/", views.download_your_data, name="your_data"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions/<int:session_id>/end/", views.end_session, name="end_session"),
    path("sessions/end-others/", views.end_other_sessions, name="end_other_sessions"),
    path("passkeys/", views.passkeys, name="passkeys"),
    path("passkeys/add/", views.add_passkey, name="add_passkey"),
    path("passkeys/<int:passkey_id>/remove/", views.remove_passkey, name="remove_passkey"),
    path(
        "passkeys/registration/begin/",
        passkeys.BeginRegistration.as_view(),
        name="passkey_registration_begin",
    ),
    path(
        "passkeys/registration/complete/",
        passkeys.CompleteRegistration.as_view(),
        name="passkey_registration_complete",
    ),
    path(
        "passkeys/authentication/begin/",
        passkeys.BeginAuthentication.as_view(),
        name="passkey_authentication_begin",
    ),
    path(
        "passkeys/authentication/complete/",
        passkeys.CompleteAuthentication.as_view(),
        name="passkey_authentication_complete",
    ),
    # The translations the library's script calls through gettext().
    path(
        "passkeys/jsi18n/",
        JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]),
        name="passkey_jsi18n",
    ),
    path("logout/", views.sign_out, name="logout"),
    path("oidc/start/", oidc.StartSignIn.as_view(), name="oidc_start"),
    path("oidc/callback/", oidc.FinishSignIn.as_view(), name="oidc_callback"),
]
