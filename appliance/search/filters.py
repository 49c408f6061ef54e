"""Metadata filters in the Chroma/Mongo style, compiled to SQL over the metadata JSON.

`{"lang": "en"}`, `{"year": {"$gte": 2020}}`, `{"$or": [{"lang": "en"}, {"lang": "de"}]}`.
Operators: $eq $ne $gt $gte $lt $lte $in $nin $contains $all $exists $and $or. Keys are
metadata fields; `a.b` reaches into nested objects. Values are bound parameters, never
spliced into SQL.

Lists, as MongoDB reads them: a comparison on a field that holds a list matches when any
element satisfies it (`{"tags": "soup"}` matches `{"tags": ["soup", "stew"]}` as well as
`{"tags": "soup"}`); $ne and $nin match when no element (and not the value itself) does.
`$contains` (the list holds the value) and `$all` (the list holds every given value) match
only lists. `$exists` is true for a field present with any value, null included.

The SQL is built from a few JSON primitives over SQLite's json1 functions (`_value`, `_kind`,
`_any_element`), gathered in one section below: another dialect (PostgreSQL JSONB) gives
those the same meaning and the operators above need no change.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, literal, not_, or_, select, true

from appliance.errors import InvalidFilter
from appliance.store.schema import DocumentRow

MAX_DEPTH = 8
MAX_CONDITIONS = 256
MAX_LIST_VALUES = 1_000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}(\.[A-Za-z_][A-Za-z0-9_\-]{0,63}){0,7}$")
_ORDERED = {"$gt", "$gte", "$lt", "$lte"}
_COMPARISONS = {"$eq", "$ne", "$in", "$nin", "$contains", "$all", "$exists", *_ORDERED}
_LOGICAL = {"$and", "$or"}
Scalar = str | int | float | bool | None


class _Budget:
    def __init__(self) -> None:
        self.conditions = 0

    def spend(self, count: int = 1) -> None:
        self.conditions += count
        if self.conditions > MAX_CONDITIONS:
            raise InvalidFilter(f"filter has more than {MAX_CONDITIONS} conditions; simplify it")


def compile_filter(spec: dict[str, Any] | None) -> ColumnElement[bool] | None:
    """SQL condition over DocumentRow for a filter, or None for no filter (None or {})."""
    if spec is None or spec == {}:
        return None
    return _compile(spec, depth=1, budget=_Budget())


def _compile(spec: Any, *, depth: int, budget: _Budget) -> ColumnElement[bool]:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"filter is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, dict) or not spec:
        raise InvalidFilter(
            f'a filter must be a non-empty object like {{"lang": "en"}}, got {_show(spec)}'
        )
    clauses = []
    for key, value in spec.items():
        if key in _LOGICAL:
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{key} takes a non-empty list of filters")
            parts = [_compile(item, depth=depth + 1, budget=budget) for item in value]
            clauses.append(and_(*parts) if key == "$and" else or_(*parts))
        elif key.startswith("$"):
            raise InvalidFilter(
                f"unknown operator {key!r} at the top of a filter;{_did_you_mean(key, _LOGICAL)}"
                " logical operators are $and and $or, comparisons go inside a field: "
                '{"year": {"$gt": 2000}}'
            )
        else:
            clauses.append(_field(key, value, budget))
    return and_(*clauses) if len(clauses) > 1 else clauses[0]


def _field(key: str, condition: Any, budget: _Budget) -> ColumnElement[bool]:
    if not _KEY.match(key):
        fixed = key.strip().strip(".")
        hint = f" did you mean {fixed!r}?" if fixed != key and _KEY.match(fixed) else ""
        raise InvalidFilter(
            f"filter field {_show(key)} is not a valid metadata key;{hint} use letters, digits, "
            "_ and -, with . to reach nested fields"
        )
    if not isinstance(condition, dict):
        budget.spend()
        return _compare(key, "$eq", condition, budget)
    if not condition:
        raise InvalidFilter(f"filter on {key!r} is an empty object; give an operator like $eq")
    parts = []
    for operator, operand in condition.items():
        if operator not in _COMPARISONS:
            hint = _did_you_mean(operator, _COMPARISONS) if isinstance(operator, str) else ""
            raise InvalidFilter(
                f"unknown operator {_show(operator)} on field {key!r};{hint} use one of "
                f"{', '.join(sorted(_COMPARISONS))}"
            )
        budget.spend()
        parts.append(_compare(key, operator, operand, budget))
    return and_(*parts) if len(parts) > 1 else parts[0]


def _compare(key: str, operator: str, operand: Any, budget: _Budget) -> ColumnElement[bool]:
    path = _path(key)
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilter(f"$exists on {key!r} takes true or false, got {_show(operand)}")
        present = _kind(path).is_not(None)
        return present if operand else not_(present)
    if operator in ("$in", "$nin", "$all"):
        values = _values(key, operator, operand)
        if operator == "$all":
            if not values:
                raise InvalidFilter(f"$all on {key!r} needs at least one value")
            budget.spend(len(values) - 1)
            return and_(*(_holds(path, [value]) for value in values))
        if not values:
            return false() if operator == "$in" else true()
        matches = _equals_any(path, values)
        # Like Mongo, $nin also matches documents that lack the field.
        return matches if operator == "$in" else not_(matches)
    scalar = _scalar(key, operator, operand)
    if operator == "$eq":
        return _equals_any(path, [scalar])
    if operator == "$ne":
        return not_(_equals_any(path, [scalar]))
    if operator == "$contains":
        return _holds(path, [scalar])
    if scalar is None or isinstance(scalar, bool):
        raise InvalidFilter(f"{operator} on {key!r} needs a number or a string")
    # Order only within a type: a number never compares with a string.
    return _either(
        _ordered(_value(path), _kind(path), operator, scalar),
        _any_element(path, lambda value, kind: _ordered(value, kind, operator, scalar)),
    )


def _equals_any(path: str, values: Sequence[Scalar]) -> ColumnElement[bool]:
    """The field equals one of `values`, or is a list with an element that does."""
    return _either(
        _one_of(_value(path), _kind(path), values),
        _any_element(path, lambda value, kind: _one_of(value, kind, values)),
    )


def _holds(path: str, values: Sequence[Scalar]) -> ColumnElement[bool]:
    """The field is a list with an element equal to one of `values`."""
    return func.coalesce(
        _any_element(path, lambda value, kind: _one_of(value, kind, values)), false()
    )


def _either(scalar: ColumnElement[bool], element: ColumnElement[bool]) -> ColumnElement[bool]:
    # A missing field gives NULL, and NULL = x is NULL: coalesce so negation stays correct.
    return func.coalesce(or_(scalar, element), false())


def _one_of(value: Any, kind: Any, values: Sequence[Scalar]) -> ColumnElement[bool]:
    """`value` (of JSON type `kind`) equals one of `values`, type for type: 1 is not true and
    not "1". One IN list per type, so a long $in stays one condition."""
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    kinds = {_JSON_KIND[v] for v in values if v is None or isinstance(v, bool)}
    parts = []
    if strings:
        parts.append(and_(kind == "text", value.in_(strings)))
    if numbers:
        parts.append(and_(kind.in_(("integer", "real")), value.in_(numbers)))
    if kinds:
        parts.append(kind.in_(sorted(kinds)))
    return or_(*parts) if len(parts) > 1 else parts[0]


def _ordered(value: Any, kind: Any, operator: str, scalar: str | int | float) -> Any:
    same_type = kind == "text" if isinstance(scalar, str) else kind.in_(("integer", "real"))
    ordered = {
        "$gt": value > scalar,
        "$gte": value >= scalar,
        "$lt": value < scalar,
        "$lte": value <= scalar,
    }[operator]
    return and_(same_type, ordered)


# -- JSON primitives (SQLite json1) ------------------------------------------------------------
# The only dialect-specific part: what a path's value and JSON type are, and whether a list at
# a path has an element satisfying a condition on (element value, element JSON type).
_JSON_KIND = {None: "null", True: "true", False: "false"}


def _path(key: str) -> str:
    return "$" + "".join(f'."{part}"' for part in key.split("."))


def _value(path: str) -> Any:
    return func.json_extract(DocumentRow.meta, path)


def _kind(path: str) -> Any:
    """'null' 'true' 'false' 'integer' 'real' 'text' 'array' 'object', or NULL if absent."""
    return func.json_type(DocumentRow.meta, path)


def _any_element(path: str, condition: Callable[[Any, Any], Any]) -> ColumnElement[bool]:
    # The type test first: json_each over a scalar yields the scalar itself, and a field that
    # is no list never pays for the subquery.
    elements = func.json_each(DocumentRow.meta, path).table_valued("value", "type")
    return and_(
        _kind(path) == "array",
        select(literal(1))
        .select_from(elements)
        .where(condition(elements.c.value, elements.c.type))
        .exists(),
    )


# -- operands ---------------------------------------------------------------------------------
def _values(key: str, operator: str, operand: Any) -> list[Scalar]:
    if not isinstance(operand, list):
        raise InvalidFilter(f"{operator} on {key!r} takes a list of values")
    if len(operand) > MAX_LIST_VALUES:
        raise InvalidFilter(f"{operator} on {key!r} has more than {MAX_LIST_VALUES} values")
    return [_scalar(key, operator, item) for item in operand]


def _scalar(key: str, operator: str, operand: Any) -> Scalar:
    if operand is None or isinstance(operand, str | bool | int):
        return operand
    if isinstance(operand, float):
        if operand != operand or operand in (float("inf"), float("-inf")):
            raise InvalidFilter(f"{operator} on {key!r} got a non-finite number")
        return operand
    raise InvalidFilter(
        f"{operator} on {key!r} takes a string, number, boolean or null, got {_show(operand)}"
    )


def _did_you_mean(word: str, choices: set[str]) -> str:
    """` did you mean '$gte'?` for a near miss ('$gte ', 'gte', '$greater'), else ""."""
    cleaned = "$" + word.strip().lstrip("$").lower()
    if cleaned in choices:
        return f" did you mean {cleaned!r}?"
    close = difflib.get_close_matches(cleaned, sorted(choices), n=1, cutoff=0.6)
    return f" did you mean {close[0]!r}?" if close else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
