from django.urls import path

from documents import views

app_name = "documents"

urlpatterns = [
    path("api/documents", views.document_list, name="list"),
    path("api/documents/<uuid:document_id>", views.document_detail, name="detail"),
]
