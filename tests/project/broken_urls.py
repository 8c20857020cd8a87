"""URLs whose views fail, for the server-error page tests."""

from django.db import OperationalError
from django.urls import path


def _fail(request):
    raise RuntimeError("a bug in a view")


def _database_down(request):
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed')


urlpatterns = [path("broken", _fail), path("database-down", _database_down)]

handler500 = "project.views.server_error"
