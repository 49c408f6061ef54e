"""Option values parsed by click parameter types, not in command bodies."""

from __future__ import annotations

import json
from typing import Any

import click


class JsonObject(click.ParamType):
    """A JSON object given on the command line, e.g. a metadata filter."""

    name = "json"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc.msg} (at character {exc.pos})", param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"must be a JSON object, not {type(parsed).__name__}", param, ctx)
        return parsed


class NumberList(click.ParamType):
    """Comma-separated numbers (`16,32,64`) of one kind."""

    def __init__(self, kind: type[int] | type[float]) -> None:
        self.kind = kind
        self.name = f"{kind.__name__}[,...]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> list[Any]:
        if isinstance(value, list):
            return value
        try:
            return [self.kind(part) for part in str(value).split(",") if part.strip()]
        except ValueError:
            name = param.opts[0] if param is not None and param.opts else "the value"
            self.fail(f"{name} takes comma-separated numbers", param, ctx)


JSON_OBJECT = JsonObject()
SEARCH_MODES = click.Choice(["dense", "keyword", "hybrid"])
