from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """People's own files and group collections, indexed for questions in chat."""

    name = "documents"
