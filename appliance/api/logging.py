"""Request ids and structured logs: each request gets an `X-Request-ID` (the client's, or a new
one), echoed in the answer and written on one access log line per request; with
`log_format = "json"` every log line is one JSON object."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.logging.config import LoggingConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.random_id import random_hex_id

ACCESS_LOG = logging.getLogger("appliance.access")
REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed into headers and logs: accept only short, plain tokens.
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _VALID_ID.fullmatch(text) else None
    return None


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Outermost middleware: fixes the request's id and notes when it arrived."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            state["request_id"] = _incoming_id(scope) or random_hex_id()
            state["request_started"] = time.perf_counter()
        await app(scope, receive, send)

    return middleware


async def log_response(message: Message, scope: Scope) -> None:
    """An app-level `before_send` hook, so it also sees the answers to errors raised in
    middleware (401, 403, 429) and to paths no route matches."""
    if message["type"] != "http.response.start" or scope["type"] != "http":
        return
    state: dict[str, Any] = scope.setdefault("state", {})
    request_id = state.get("request_id") or _incoming_id(scope) or random_hex_id()
    MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id
    started = state.get("request_started")
    ms = round((time.perf_counter() - started) * 1000, 2) if started is not None else None
    status = int(message["status"])
    method, path = scope.get("method", ""), scope["path"]
    ACCESS_LOG.info(
        "%s %s %d %s ms",
        method,
        path,
        status,
        ms,
        extra={
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "ms": ms,
        },
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def litestar_logging_config(log_format: str, log_level: str = "INFO") -> LoggingConfig | None:
    """Litestar's own logging set-up (its queue handler and format) for "text", at the
    configured level: its default would set the root logger to INFO, writing an access line
    per request even where WARNING was asked for. None for "json", whose handlers
    `configure_logging` owns (Litestar's queue handler would format each line a second time)."""
    if log_format == "json":
        return None
    level = log_level.upper()
    return LoggingConfig(
        root={"handlers": ["queue_listener"], "level": level},
        loggers={"litestar": {"level": level, "handlers": ["queue_listener"], "propagate": False}},
    )


def configure_logging(log_format: str) -> None:
    """With "json", every handler on the root logger writes JSON lines; "text" leaves the
    logging set-up (the CLI's) as it is."""
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
