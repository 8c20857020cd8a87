from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """People's own files and group collections, indexed for questions in chat."""

    name = "documents"

    def ready(self):
        from chat import retrieval
        from documents.search import DocumentSearch

        retrieval.register(DocumentSearch())
