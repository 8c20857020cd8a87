from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    """People's own files and group collections, indexed for questions in chat."""

    name = "documents"

    def ready(self):
        from django.db.models.signals import post_delete

        from accounts.roles import ADMINS, add_role_permissions
        from accounts.signals import user_erasing
        from chat import retrieval
        from core import datakeys, personal_data
        from documents.models import DOCUMENT_SCOPE, Document
        from documents.search import DocumentSearch
        from documents.services import (
            destroy_document_key,
            erase_documents_of,
            erased_document_counts,
            forget_erased_document,
        )
        from documents.your_data import documents_section

        retrieval.register(DocumentSearch())
        # Admins manage collections and their grants in the admin (never documents).
        add_role_permissions(
            ADMINS,
            [
                ("documents", f"{action}_{model}")
                for model in ("collection", "collectiongrant")
                for action in ("add", "change", "delete", "view")
            ],
        )
        user_erasing.connect(erase_documents_of, dispatch_uid="documents.erase_documents_of")
        post_delete.connect(
            destroy_document_key, sender=Document, dispatch_uid="documents.destroy_key"
        )
        datakeys.register_scope_eraser(DOCUMENT_SCOPE, forget_erased_document)
        datakeys.register_erased_counter(erased_document_counts)
        personal_data.register(
            "documents",
            "the list of documents uploaded: names, types, sizes, statuses and dates (not the "
            "files)",
            documents_section,
        )
