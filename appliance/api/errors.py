"""Every error leaves the API as JSON `{"error": code, "detail": message}`; status codes are
chosen here, in one place. No stack trace ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
    HTTP_507_INSUFFICIENT_STORAGE,
)
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.exc import OperationalError

from appliance.api.metrics import ERRORS
from appliance.api.validation import explain
from appliance.errors import (
    ApplianceError,
    CollectionExists,
    CollectionNotFound,
    DataDirBusy,
    DocumentNotFound,
    IndexBackendUnavailable,
    IndexServerError,
    InvalidRequest,
    JobNotFound,
    ModelIntegrityError,
    ModelNotFound,
    NotReady,
    Overloaded,
    QueryNotFound,
    ReindexConflict,
    SchemaError,
    UnknownModel,
    VersionNotFound,
)
from appliance.store.disk import STORAGE_FULL_DETAIL, StorageFull, is_disk_full

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ApplianceError], int] = {
    InvalidRequest: HTTP_400_BAD_REQUEST,
    IndexBackendUnavailable: HTTP_400_BAD_REQUEST,
    CollectionNotFound: HTTP_404_NOT_FOUND,
    DocumentNotFound: HTTP_404_NOT_FOUND,
    QueryNotFound: HTTP_400_BAD_REQUEST,
    JobNotFound: HTTP_404_NOT_FOUND,
    VersionNotFound: HTTP_404_NOT_FOUND,
    UnknownModel: HTTP_404_NOT_FOUND,
    ReindexConflict: HTTP_409_CONFLICT,
    CollectionExists: HTTP_409_CONFLICT,
    DataDirBusy: HTTP_409_CONFLICT,
    NotReady: HTTP_503_SERVICE_UNAVAILABLE,
    Overloaded: HTTP_503_SERVICE_UNAVAILABLE,
    ModelNotFound: HTTP_503_SERVICE_UNAVAILABLE,
    ModelIntegrityError: HTTP_503_SERVICE_UNAVAILABLE,
    SchemaError: HTTP_503_SERVICE_UNAVAILABLE,
    IndexServerError: HTTP_503_SERVICE_UNAVAILABLE,
    StorageFull: HTTP_507_INSUFFICIENT_STORAGE,
}

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def status_for(exc: ApplianceError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return HTTP_500_INTERNAL_SERVER_ERROR


def error_response(status: int, code: str, detail: str) -> Response[dict[str, str]]:
    ERRORS.labels(type=code).inc()
    return Response(
        {"error": code, "detail": detail}, status_code=status, media_type=MediaType.JSON
    )


def appliance_error(_: Request[Any, Any, Any], exc: ApplianceError) -> Response[dict[str, str]]:
    response = error_response(status_for(exc), exc.code, exc.detail)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


def _body_type(request: Request[Any, Any, Any]) -> Any:
    """The request type the route decodes its body into, if any."""
    try:
        field = request.route_handler.parsed_data_field
    except Exception:  # no route matched: nothing to say more
        return None
    return field.annotation if field is not None else None


def validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, str]]:
    problems = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            where = item.get("key") or item.get("source") or "body"
            message = str(item.get("message", "invalid"))
            body_type = _body_type(request) if item.get("source") == "body" else None
            problems.append(explain(body_type, str(where), message))
    detail = "; ".join(problems) or str(exc.detail)
    return error_response(HTTP_400_BAD_REQUEST, "invalid_request", detail)


def http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {_request.url.path!r}; the API is listed at /schema/swagger"
    if exc.status_code == 413:
        detail = "request body is larger than the server accepts; send smaller batches"
    response = error_response(exc.status_code, code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 429 and "Retry-After" not in response.headers:
        # Litestar's rate limiter says when its window resets; Retry-After is the standard name.
        reset = response.headers.get("RateLimit-Reset", "1")
        response.headers["Retry-After"] = str(max(1, int(reset) if reset.isdigit() else 1))
    return response


def database_error(request: Request[Any, Any, Any], exc: OperationalError) -> Response[Any]:
    # SQLite rolled the transaction back, so the store is as it was before this request.
    if is_disk_full(exc):
        return appliance_error(request, StorageFull(STORAGE_FULL_DETAIL))
    return unexpected_error(request, exc)


def undecodable_body(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    return error_response(
        HTTP_400_BAD_REQUEST,
        "invalid_request",
        f"the request body is not valid UTF-8 (byte {exc.start}); send UTF-8 encoded JSON",
    )


def unexpected_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        f"the server failed on this request ({type(exc).__name__}); the logs have details",
    )


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    ApplianceError: appliance_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    OperationalError: database_error,
    UnicodeDecodeError: undecodable_body,
    Exception: unexpected_error,
}


def handler_for(exc: Exception) -> Any:
    for kind in type(exc).__mro__:
        if kind in EXCEPTION_HANDLERS:
            return EXCEPTION_HANDLERS[kind]
    return unexpected_error


def middleware_error_answers(app: ASGIApp) -> ASGIApp:
    """Answers errors raised by the middleware inside it (the API-key check's 401 and 403, the
    rate limiter's 429) right here, with the handlers above.

    Litestar answers an exception raised in middleware outside every middleware, so the
    Prometheus middleware, which learns the status from what is sent through it, never saw
    the 401 and counted a 200. Placed just inside it, this sends the answer through it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await app(scope, receive, tracked)
        except Exception as exc:
            if started or scope["type"] != "http":
                raise
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = handler_for(exc)(request, exc)
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    return middleware
