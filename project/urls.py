from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from chat import views as chat_views
from project import views

urlpatterns = [
    path("", chat_views.chat_page, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("accounts/", include("accounts.urls")),
    path("chat/", include("chat.urls")),
    path("supervision/", include("chat.supervision_urls")),
    path("documents/", include("documents.urls")),
    path("tokens/", include("api.urls")),
    # One way in: the admin's own sign-in page hands over to the two-step one.
    path(
        "admin/login/",
        RedirectView.as_view(url="/accounts/login/", query_string=True),
        name="admin_login_redirect",
    ),
    path("admin/", admin.site.urls),
]

handler403 = "project.views.permission_denied"
handler500 = "project.views.server_error"
