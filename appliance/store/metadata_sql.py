"""Conditions on a document's metadata field, spelled in each dialect's JSON functions: SQLite's
json1 (json_extract, json_type, json_each) over JSON text, PostgreSQL's #>, @> and
jsonb_array_elements over JSONB. The filter compiler (search/filters.py) builds every operator
from the four primitives here; which SQL they become is decided when a statement is compiled
for its engine, so a compiled filter runs on either store.

One semantics on both:
- a field matches only a value of its own JSON type (1 equals 1.0, never "1" or true);
- a missing field equals nothing, not even null, and every primitive is TRUE or FALSE, never
  NULL, so NOT is safe;
- a field holding a list matches a comparison when one of its elements does, as MongoDB reads
  lists (`holds` matches lists only);
- strings order by their bytes (SQLite's BINARY, PostgreSQL's "C" collation, whatever the
  database's own collation is); `a.b` reaches into nested objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    collate,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from appliance.store.schema import DocumentRow

Scalar = str | int | float | bool | None
Path = tuple[str, ...]
ORDERINGS = ("$gt", "$gte", "$lt", "$lte")


class _Condition(ColumnElement[bool]):
    type = Boolean()
    # Built per dialect at compile time from plain values: not a cacheable statement part.
    inherit_cache = False


class MetadataEqualsAny(_Condition):
    """The field equals one of `values` (None: an explicit JSON null), or is a list with an
    element that does."""

    inherit_cache = False

    def __init__(self, path: Path, values: Sequence[Scalar]) -> None:
        self.path, self.values = path, list(values)


class MetadataHolds(_Condition):
    """The field is a list with an element equal to one of `values`."""

    inherit_cache = False

    def __init__(self, path: Path, values: Sequence[Scalar]) -> None:
        self.path, self.values = path, list(values)


class MetadataOrdered(_Condition):
    """The field (or an element of a list it holds) is a number, for a numeric operand, or a
    string, for a string one, and compares with `operator` ($gt $gte $lt $lte) to it."""

    inherit_cache = False

    def __init__(self, path: Path, operator: str, operand: int | float | str) -> None:
        if operator not in ORDERINGS:
            raise ValueError(f"not an ordering: {operator}")
        self.path, self.operator, self.operand = path, operator, operand


class MetadataExists(_Condition):
    """The field is present, with any value (null included)."""

    inherit_cache = False

    def __init__(self, path: Path) -> None:
        self.path = path


def metadata_equals_any(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    return MetadataEqualsAny(path, values)


def metadata_holds(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    return MetadataHolds(path, values)


def metadata_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    return MetadataOrdered(path, operator, operand)


def metadata_exists(path: Path) -> ColumnElement[bool]:
    return MetadataExists(path)


def _ordered(left: Any, operator: str, right: Any) -> ColumnElement[bool]:
    return {
        "$gt": left > right,
        "$gte": left >= right,
        "$lt": left < right,
        "$lte": left <= right,
    }[operator]


def _split(
    values: Sequence[Scalar],
) -> tuple[list[str], list[int | float], list[bool | None]]:
    """(strings, numbers, the JSON constants null/true/false) of `values`."""
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    constants: list[bool | None] = [v for v in values if v is None or isinstance(v, bool)]
    return strings, numbers, constants


# -- SQLite: json1 over the JSON text ----------------------------------------------------------
_JSON_KIND = {None: "null", True: "true", False: "false"}


def _sqlite_path(path: Path) -> str:
    return "$" + "".join(f'."{part}"' for part in path)


def _sqlite_value(path: Path) -> Any:
    return func.json_extract(DocumentRow.meta, _sqlite_path(path))


def _sqlite_kind(path: Path) -> Any:
    """'null' 'true' 'false' 'integer' 'real' 'text' 'array' 'object', or NULL if absent."""
    return func.json_type(DocumentRow.meta, _sqlite_path(path))


def _sqlite_any_element(path: Path, condition: Callable[[Any, Any], Any]) -> ColumnElement[bool]:
    # The type test first: json_each over a scalar yields the scalar itself, and a field that
    # is no list never pays for the subquery.
    elements = func.json_each(DocumentRow.meta, _sqlite_path(path)).table_valued("value", "type")
    return and_(
        _sqlite_kind(path) == "array",
        select(literal(1))
        .select_from(elements)
        .where(condition(elements.c.value, elements.c.type))
        .exists(),
    )


def _sqlite_one_of(value: Any, kind: Any, values: Sequence[Scalar]) -> ColumnElement[bool]:
    """`value` (of JSON type `kind`) equals one of `values`, type for type. One IN list per
    type, so a long $in stays one condition."""
    strings, numbers, constants = _split(values)
    parts = []
    if strings:
        parts.append(and_(kind == "text", value.in_(strings)))
    if numbers:
        parts.append(and_(kind.in_(("integer", "real")), value.in_(numbers)))
    if constants:
        parts.append(kind.in_(sorted({_JSON_KIND[v] for v in constants})))
    return or_(*parts) if len(parts) > 1 else parts[0]


def _sqlite_ordered(value: Any, kind: Any, operator: str, operand: int | float | str) -> Any:
    same_type = kind == "text" if isinstance(operand, str) else kind.in_(("integer", "real"))
    return and_(same_type, _ordered(value, operator, operand))


def sqlite_equals_any(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    # A missing field gives NULL, and NULL = x is NULL: coalesce so negation stays correct.
    return func.coalesce(
        or_(
            _sqlite_one_of(_sqlite_value(path), _sqlite_kind(path), values),
            _sqlite_any_element(path, lambda value, kind: _sqlite_one_of(value, kind, values)),
        ),
        false(),
    )


def sqlite_holds(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    return func.coalesce(
        _sqlite_any_element(path, lambda value, kind: _sqlite_one_of(value, kind, values)),
        false(),
    )


def sqlite_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    return func.coalesce(
        or_(
            _sqlite_ordered(_sqlite_value(path), _sqlite_kind(path), operator, operand),
            _sqlite_any_element(
                path, lambda value, kind: _sqlite_ordered(value, kind, operator, operand)
            ),
        ),
        false(),
    )


def sqlite_exists(path: Path) -> ColumnElement[bool]:
    return _sqlite_kind(path).is_not(None)


# -- PostgreSQL: #>, @> and jsonb_array_elements over JSONB --------------------------------------
def _pg_field(path: Path) -> Any:
    return DocumentRow.meta.op("#>", return_type=JSONB)(
        bindparam(None, list(path), type_=ARRAY(Text))
    )


def _jsonb(value: Any) -> Any:
    return cast(bindparam(None, json.dumps(value), type_=Text), JSONB)


def _pg_holds(field: Any, values: Sequence[Scalar]) -> ColumnElement[bool]:
    # A JSONB array contains [v] when an element equals v (typed: 1 = 1.0, 1 <> '1').
    return and_(
        func.jsonb_typeof(field) == "array",
        or_(*(field.op("@>", return_type=Boolean)(_jsonb([v])) for v in values)),
    )


def postgres_equals_any(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    # JSONB equality is typed already: 1 = 1.0, 1 <> '1', true <> 1, null = null; a missing
    # field (SQL NULL) is coalesced to no match.
    field = _pg_field(path)
    equal = or_(*(field == _jsonb(v) for v in values))
    return func.coalesce(or_(equal, _pg_holds(field, values)), false())


def postgres_holds(path: Path, values: Sequence[Scalar]) -> ColumnElement[bool]:
    return func.coalesce(_pg_holds(_pg_field(path), values), false())


def _pg_ordered(value: Any, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    """`value` (a JSONB expression) is of the operand's type and compares with it."""
    if isinstance(operand, str):
        text = value.op("#>>", return_type=Text)(bindparam(None, [], type_=ARRAY(Text)))
        ordered = _ordered(collate(text, "C"), operator, bindparam(None, operand, Text))
        kind = "string"
    else:
        # JSONB orders numbers by value; the type test keeps other types out.
        ordered = _ordered(value, operator, _jsonb(operand))
        kind = "number"
    return and_(func.jsonb_typeof(value) == kind, ordered)


def postgres_ordered(path: Path, operator: str, operand: int | float | str) -> ColumnElement[bool]:
    field = _pg_field(path)
    elements = func.jsonb_array_elements(field).table_valued("value")
    any_element = and_(
        func.jsonb_typeof(field) == "array",
        select(literal(1))
        .select_from(elements)
        .where(_pg_ordered(elements.c.value, operator, operand))
        .exists(),
    )
    return func.coalesce(or_(_pg_ordered(field, operator, operand), any_element), false())


def postgres_exists(path: Path) -> ColumnElement[bool]:
    # #> gives SQL NULL for a missing path and the JSONB null for an explicit null.
    return _pg_field(path).is_not(None)


_SPELLINGS: dict[type[_Condition], tuple[Callable[..., Any], Callable[..., Any]]] = {
    MetadataEqualsAny: (sqlite_equals_any, postgres_equals_any),
    MetadataHolds: (sqlite_holds, postgres_holds),
    MetadataOrdered: (sqlite_ordered, postgres_ordered),
    MetadataExists: (sqlite_exists, postgres_exists),
}


def _arguments(element: _Condition) -> tuple[Any, ...]:
    if isinstance(element, MetadataOrdered):
        return element.path, element.operator, element.operand
    if isinstance(element, MetadataExists):
        return (element.path,)
    assert isinstance(element, MetadataEqualsAny | MetadataHolds)
    return element.path, element.values


# Each condition is parenthesised: a dialect without a boolean type (SQLite) tests it with
# `= 1`, which must apply to the whole of it.
def _compile_sqlite(element: _Condition, compiler: SQLCompiler, **kw: Any) -> str:
    condition = _SPELLINGS[type(element)][0](*_arguments(element))
    return f"({compiler.process(condition, **kw)})"


def _compile_postgres(element: _Condition, compiler: SQLCompiler, **kw: Any) -> str:
    condition = _SPELLINGS[type(element)][1](*_arguments(element))
    return f"({compiler.process(condition, **kw)})"


for _kind in _SPELLINGS:
    compiles(_kind)(_compile_sqlite)
    compiles(_kind, "postgresql")(_compile_postgres)
