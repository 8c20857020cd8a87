"""OpenAI's error object and the status codes its clients map to exception classes."""

from django.http import JsonResponse


class ApiError(Exception):
    """A refusal the caller sees as ``{"error": {...}}`` with ``status``; ``message`` is a
    sentence saying what to do."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        if self.retry_after is not None:
            response["Retry-After"] = str(self.retry_after)
        return response


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key")


def forbidden(message: str, code: str = "insufficient_scope") -> ApiError:
    return ApiError(403, message, error_type="permission_error", code=code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code=code)


def rate_limited(message: str, retry_after: int, code: str) -> ApiError:
    return ApiError(429, message, error_type="rate_limit_error", code=code, retry_after=retry_after)


def unavailable(message: str, retry_after: int | None = None) -> ApiError:
    return ApiError(
        503, message, error_type="server_error", code="unavailable", retry_after=retry_after
    )


def server_error(message: str) -> ApiError:
    return ApiError(500, message, error_type="server_error", code="internal")
