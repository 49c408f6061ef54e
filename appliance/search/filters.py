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

The same filter runs on a SQLite or a PostgreSQL store: the conditions are built from four
primitives of the store (store/metadata_sql.py: equals-any, holds, ordered, exists), which
spell them in each dialect's JSON functions when a statement is compiled.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_, true

from appliance.errors import InvalidFilter
from appliance.store.metadata_sql import (
    Scalar,
    metadata_equals_any,
    metadata_exists,
    metadata_holds,
    metadata_ordered,
)

MAX_DEPTH = 8
MAX_CONDITIONS = 256
MAX_LIST_VALUES = 1_000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}(\.[A-Za-z_][A-Za-z0-9_\-]{0,63}){0,7}$")
_ORDERED = {"$gt", "$gte", "$lt", "$lte"}
_COMPARISONS = {"$eq", "$ne", "$in", "$nin", "$contains", "$all", "$exists", *_ORDERED}
_LOGICAL = {"$and", "$or"}


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
    path = tuple(key.split("."))
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilter(f"$exists on {key!r} takes true or false, got {_show(operand)}")
        present = metadata_exists(path)
        return present if operand else not_(present)
    if operator in ("$in", "$nin", "$all"):
        values = _values(key, operator, operand)
        if operator == "$all":
            if not values:
                raise InvalidFilter(f"$all on {key!r} needs at least one value")
            budget.spend(len(values) - 1)
            return and_(*(metadata_holds(path, [value]) for value in values))
        if not values:
            return false() if operator == "$in" else true()
        matches = metadata_equals_any(path, values)
        # Like Mongo, $nin also matches documents that lack the field.
        return matches if operator == "$in" else not_(matches)
    scalar = _scalar(key, operator, operand)
    if operator == "$eq":
        return metadata_equals_any(path, [scalar])
    if operator == "$ne":
        return not_(metadata_equals_any(path, [scalar]))
    if operator == "$contains":
        return metadata_holds(path, [scalar])
    if scalar is None or isinstance(scalar, bool):
        raise InvalidFilter(f"{operator} on {key!r} needs a number or a string")
    # Order only within a type: a number never compares with a string.
    return metadata_ordered(path, operator, scalar)


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
