"""JSON request bodies decoded strictly, as the OpenAPI schema describes them.

Litestar converts a body leniently (`0` for a boolean, `"2"` for an integer), so a request the
schema calls invalid would be served. This `before_request` hook decodes the body strictly
too and refuses what only the lenient reading accepts (except a float with an integral value
for an integer: JSON Schema counts 2.0 as an integer too); everything else is left to
Litestar's own validation, whose messages `api/errors.py` rewrites.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _body_type(request: Request[Any, Any, Any]) -> Any:
    field = request.route_handler.parsed_data_field
    annotation = field.annotation if field is not None else None
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    return None


async def strict_body(request: Request[Any, Any, Any]) -> None:
    body_type = _body_type(request)
    if body_type is None:
        return
    raw = await request.body()
    try:
        msgspec.json.decode(raw, type=body_type, strict=True)
        return
    except msgspec.DecodeError as strict_error:
        try:
            msgspec.json.decode(raw, type=body_type, strict=False)
        except msgspec.DecodeError:
            return  # refused either way: Litestar's validation says why
        found = _AT.match(str(strict_error))
        message = found["message"] if found else str(strict_error)
        if message.startswith("Expected `int") and message.endswith("got `float`"):
            # JSON Schema counts 2.0 as an integer; the lenient reading takes it as 2.
            return
        path = (found["path"] or "").lstrip(".") if found else ""
        raise ValidationException(
            extra=[{"key": path or "data", "message": message, "source": "body"}]
        ) from None
