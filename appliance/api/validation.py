"""Request validation messages that say what to send instead: msgspec says "Invalid enum value
'semantic'" or shows a regex; here the request type itself supplies the valid values, the
field names an unknown one is closest to, and a plain description of a pattern."""

from __future__ import annotations

import difflib
import re
from typing import Any

from msgspec import inspect

from appliance.api.schemas import PATTERN_DESCRIPTIONS

_STEP = re.compile(r"\[\d+\]|[^.\[\]]+")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>.+)`$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>'.*')$")


def _unwrap(info: inspect.Type) -> list[inspect.Type]:
    """The alternatives of a type: a union's members (None left out), or the type itself."""
    if isinstance(info, inspect.UnionType):
        return [member for member in info.types if not isinstance(member, inspect.NoneType)]
    return [info]


def type_at(root: Any, key: str) -> inspect.Type | None:
    """The type of the value at a Litestar error key (`mode`, `params.ef`, `documents[0]`,
    `data` for the body itself) in request type `root`; None when the path leads nowhere."""
    current: inspect.Type = inspect.type_info(root)
    steps = _STEP.findall(key)
    if steps[:1] == ["data"]:
        steps = steps[1:]
    for step in steps:
        found: inspect.Type | None = None
        for option in _unwrap(current):
            if step.startswith("[") and isinstance(option, inspect.ListType):
                found = option.item_type
            elif isinstance(option, inspect.StructType):
                field = next((f for f in option.fields if f.encode_name == step), None)
                found = field.type if field else None
            if found is not None:
                break
        if found is None:
            return None
        current = found
    return current


def explain(root: Any, key: str, message: str) -> str:
    """`key: message`, the message rewritten where the request type can say more."""
    where = "body" if key == "data" else key
    info = type_at(root, key) if root is not None else None
    if info is not None:
        if enum := _ENUM.match(message):
            values = [
                value
                for option in _unwrap(info)
                if isinstance(option, inspect.LiteralType)
                for value in option.values
            ]
            if values:
                return f"{where}: {enum['value']} is not one of {', '.join(map(str, values))}"
        if unknown := _UNKNOWN_FIELD.match(message):
            names = [
                field.encode_name
                for option in _unwrap(info)
                if isinstance(option, inspect.StructType)
                for field in option.fields
            ]
            if names:
                field = unknown["field"]
                close = difflib.get_close_matches(field, names, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                return f"{where}: unknown field {field!r}; {hint}the fields are {', '.join(names)}"
    if regex := _REGEX.match(message):
        # msgspec quotes the pattern with repr(): compare against the same form.
        for pattern, description in PATTERN_DESCRIPTIONS.items():
            if regex["pattern"] == repr(pattern):
                return f"{where}: {description}"
    return f"{where}: {message}"
