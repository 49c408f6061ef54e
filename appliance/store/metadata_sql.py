"""Conditions on a document's metadata field, spelled in each dialect's JSON functions: SQLite's
json_extract/json_type over JSON text, PostgreSQL's #> over JSONB. The filter compiler
(search/filters.py) builds its conditions from these; which SQL they become is decided when a
statement is compiled for its engine, so a compiled filter runs on either store.

One semantics on both: a field matches only a value of its own JSON type (1 equals 1.0, never
"1" or true); a missing field equals nothing, not even null; strings order by their bytes
(SQLite's BINARY, PostgreSQL's "C" collation, whatever the database's own collation is);
`a.b` reaches into nested objects.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Text, and_, bindparam, cast, collate, false, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from appliance.store.schema import DocumentRow

Scalar = str | int | float | bool | None
Path = tuple[str, ...]
ORDERINGS = ("$gt", "$gte", "$lt", "$lte")


class MetadataEquals(ColumnElement[bool]):
    """The field holds `scalar` (None: an explicit JSON null). Never NULL, so NOT is safe."""

    type = Boolean()
    # Built per dialect at compile time from plain values: not a cacheable statement part.
    inherit_cache = False

    def __init__(self, path: Path, scalar: Scalar) -> None:
        self.path, self.scalar = path, scalar


class MetadataOrdered(ColumnElement[bool]):
    """The field is a number (for a numeric operand) or a string (for a string one) and
    compares with `operator` ($gt $gte $lt $lte) to the operand."""

    type = Boolean()
    inherit_cache = False

    def __init__(self, path: Path, operator: str, operand: int | float | str) -> None:
        if operator not in ORDERINGS:
            raise ValueError(f"not an ordering: {operator}")
        self.path, self.operator, self.operand = path, operator, operand


def metadata_equals(path: Path, scalar: Scalar) -> ColumnElement[bool]:
    return MetadataEquals(path, scalar)


def metadata_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    return MetadataOrdered(path, operator, operand)


def _ordered(left: Any, operator: str, right: Any) -> ColumnElement[bool]:
    return {
        "$gt": left > right,
        "$gte": left >= right,
        "$lt": left < right,
        "$lte": left <= right,
    }[operator]


# -- SQLite: json_extract / json_type over the JSON text ----------------------------------------
def _sqlite_path(path: Path) -> str:
    return "$" + "".join(f'."{part}"' for part in path)


def sqlite_equals(path: Path, scalar: Scalar) -> ColumnElement[bool]:
    json_path = _sqlite_path(path)
    value = func.json_extract(DocumentRow.meta, json_path)
    kind = func.json_type(DocumentRow.meta, json_path)
    if scalar is None:
        matched = kind == "null"
    elif isinstance(scalar, bool):
        matched = kind == ("true" if scalar else "false")
    else:
        same_type = kind == "text" if isinstance(scalar, str) else kind.in_(("integer", "real"))
        matched = and_(same_type, value == scalar)
    # A missing field gives NULL, and NULL = x is NULL: coalesce so negation stays correct.
    return func.coalesce(matched, false())


def sqlite_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    json_path = _sqlite_path(path)
    value = func.json_extract(DocumentRow.meta, json_path)
    kind = func.json_type(DocumentRow.meta, json_path)
    # Order only within a type: a number never compares with a string.
    same_type = kind == "text" if isinstance(operand, str) else kind.in_(("integer", "real"))
    return and_(same_type, _ordered(value, operator, operand))


# -- PostgreSQL: #> / #>> over JSONB -----------------------------------------------------------
def _field(path: Path) -> Any:
    return DocumentRow.meta.op("#>", return_type=JSONB)(
        bindparam(None, list(path), type_=ARRAY(Text))
    )


def _jsonb(value: Any) -> Any:
    return cast(bindparam(None, json.dumps(value), type_=Text), JSONB)


def postgres_equals(path: Path, scalar: Scalar) -> ColumnElement[bool]:
    # JSONB equality is typed already: 1 = 1.0, 1 <> '1', true <> 1, null = null; a missing
    # field (SQL NULL) is coalesced to no match.
    return func.coalesce(_field(path) == _jsonb(scalar), false())


def postgres_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    field = _field(path)
    if isinstance(operand, str):
        text_value = DocumentRow.meta.op("#>>", return_type=Text)(
            bindparam(None, list(path), type_=ARRAY(Text))
        )
        ordered = _ordered(collate(text_value, "C"), operator, bindparam(None, operand, Text))
        kind = "string"
    else:
        # JSONB orders numbers by value; the type test keeps other types out.
        ordered = _ordered(field, operator, _jsonb(operand))
        kind = "number"
    return func.coalesce(and_(func.jsonb_typeof(field) == kind, ordered), false())


# Each condition is parenthesised: a dialect without a boolean type (SQLite) tests it with
# `= 1`, which must apply to the whole of it.
@compiles(MetadataEquals)
def _compile_equals(element: MetadataEquals, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(sqlite_equals(element.path, element.scalar), **kw)})"


@compiles(MetadataEquals, "postgresql")
def _compile_equals_postgres(element: MetadataEquals, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(postgres_equals(element.path, element.scalar), **kw)})"


@compiles(MetadataOrdered)
def _compile_ordered(element: MetadataOrdered, compiler: SQLCompiler, **kw: Any) -> str:
    condition = sqlite_ordered(element.path, element.operator, element.operand)
    return f"({compiler.process(condition, **kw)})"


@compiles(MetadataOrdered, "postgresql")
def _compile_ordered_postgres(element: MetadataOrdered, compiler: SQLCompiler, **kw: Any) -> str:
    condition = postgres_ordered(element.path, element.operator, element.operand)
    return f"({compiler.process(condition, **kw)})"
