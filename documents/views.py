"""The documents JSON API: upload, list, status, delete. The page's upload button and drop
zone use it; so may any script with a signed-in session and the CSRF token."""

import io

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from audit.log import record_probe
from chat.views import employees_only
from documents import services
from documents.indexing import ensure_indexing_thread


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "detail": detail}}, status=status)


def _not_found(request, document_id) -> JsonResponse:
    record_probe(
        "document.not_found",
        source=request.META.get("REMOTE_ADDR", ""),
        outcome="denied",
        request=request,
        target=str(document_id),
        channel="http",
    )
    return _error(404, "not_found", "That document does not exist.")


class _InMemoryUpload(FileUploadHandler):
    """Keeps an upload in memory, never in a temporary file (which would be plaintext on
    disk), and stops reading past the size limit."""

    def __init__(self, request=None):
        super().__init__(request)
        self.too_large = False

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.parts, self.size = [], 0

    def receive_data_chunk(self, raw_data, start):
        self.size += len(raw_data)
        if self.size > settings.DOCUMENTS_MAX_FILE_BYTES:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        self.parts.append(raw_data)

    def file_complete(self, file_size):
        data = io.BytesIO(b"".join(self.parts))
        self.parts = []
        return InMemoryUploadedFile(
            data, self.field_name, self.file_name, self.content_type, file_size, self.charset
        )


def _too_large() -> JsonResponse:
    limit = settings.DOCUMENTS_MAX_FILE_BYTES / (1024 * 1024)
    return _error(413, "too_large", f"The file is too large; files may be at most {limit:.0f} MB.")


@csrf_exempt
@never_cache
@employees_only
def document_list(request):
    if request.method == "POST":
        # Before anything reads the body (the CSRF check below may): uploads stay in memory.
        handler = _InMemoryUpload(request)
        request.upload_handlers = [handler]
        return _upload(request, handler)
    if request.method == "GET":
        ensure_indexing_thread()
        return JsonResponse(
            {
                "documents": [
                    services.as_dict(d)
                    for d in services.readable_documents(request.user).order_by("-created_at")
                ]
            }
        )
    return _error(405, "method_not_allowed", "Use GET to list documents or POST to upload one.")


@csrf_protect
def _upload(request, handler):
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    # A multipart body carries a few hundred bytes of headers besides the file.
    if length > settings.DOCUMENTS_MAX_FILE_BYTES + 64 * 1024:
        return _too_large()
    upload = request.FILES.get("file")
    if handler.too_large:
        return _too_large()
    if upload is None:
        return _error(400, "bad_request", "Send the file as the multipart field `file`.")
    collection = None
    if request.POST.get("collection"):
        try:
            collection = services.collection_for_adding(request.user, request.POST["collection"])
        except services.CollectionNotFound:
            return _error(
                404, "not_found", "That collection does not exist or you may not add to it."
            )
    try:
        document = services.upload(
            actor=request.user,
            name=upload.name,
            data=upload.read(),
            collection=collection,
            request=request,
        )
    except services.UploadRefused as refused:
        return _error(400, "refused", str(refused))
    ensure_indexing_thread()
    return JsonResponse(services.as_dict(document), status=201)


@csrf_exempt
@never_cache
@employees_only
def document_detail(request, document_id):
    if request.method == "GET":
        try:
            document = services.document_for(request.user, document_id)
        except services.DocumentNotFound:
            return _not_found(request, document_id)
        return JsonResponse(services.as_dict(document))
    if request.method == "DELETE":
        return _delete(request, document_id)
    return _error(405, "method_not_allowed", "Use GET for a document's status or DELETE.")


@csrf_protect
def _delete(request, document_id):
    try:
        document = services.document_for(request.user, document_id)
    except services.DocumentNotFound:
        return _not_found(request, document_id)
    if not services.may_delete(request.user, document):
        return _error(
            403, "forbidden", "Only its uploader or the collection's owners may delete it."
        )
    try:
        services.delete(actor=request.user, document=document, request=request)
    except services.DocumentHeld as exc:
        return _error(409, "legal_hold", str(exc))
    return JsonResponse({"deleted": str(document_id)})
