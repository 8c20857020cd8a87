"""A URL whose view fails, for the server-error page test."""

from django.urls import path


def _fail(request):
    raise RuntimeError("the database went away")


urlpatterns = [path("broken", _fail)]
