"""Validate the value of each condition and write the Python expression that tests it."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from router.core.domain import Severity
from router.core.rules.attributes import AttrValue, FieldSpec, FieldType
from router.core.rules.conditions import _SYMBOLS, _bind
from router.core.rules.errors import _Invalid
from router.core.rules.formatting import _did_you_mean, _fmt, _type_name
from router.core.rules.patterns import _Patterns

_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _compile_field(
    spec: FieldSpec, op: str, raw: object, patterns: _Patterns
) -> tuple[Any, str, dict[str, Any]]:
    """Validate raw for spec/op; return the normalised value, the expression and its constants."""
    # Safe to splice: spec.name is a key of FIELDS, a fixed identifier (see conditions.py).
    attr = f"a.{spec.name}"
    consts: dict[str, Any] = {}
    kind = spec.type
    if kind in (FieldType.ENUM, FieldType.ORDERED_ENUM, FieldType.STRING, FieldType.BOOLEAN):
        if op in ("eq", "ne", "in", "not_in"):
            if op in ("eq", "ne"):
                value: Any = _scalar(spec, raw, op, "")
                members = frozenset([value])
            else:
                items = enumerate(_list(raw, op))
                value = list(dict.fromkeys(_scalar(spec, v, op, f"[{i}]") for i, v in items))
                members = frozenset(value)
            # Enum members hash and compare like their string values, so a set of strings
            # matches both Tier.PREMIUM and "premium".
            negate = "not " if op in ("ne", "not_in") else ""
            return value, f"({attr} {negate}in {_bind(consts, members)})", consts
        if kind is FieldType.ORDERED_ENUM:
            # Severity comparisons by rank become a precomputed membership test.
            bound = Severity(_scalar(spec, raw, op, ""))
            cmp = _COMPARE[op]
            allowed = frozenset(s.value for s in Severity if cmp(s.rank, bound.rank))
            return bound.value, f"({attr} in {_bind(consts, allowed)})", consts
        if op == "contains":
            needle = _bind(consts, _string(raw, allow_empty=False).casefold())
            return raw, f"({attr} is not None and {needle} in {attr}.casefold())", consts
        if op == "matches":
            search = _bind(consts, patterns.searcher(_string(raw, allow_empty=False)))
            return raw, f"({attr} is not None and {search}({attr}))", consts
    if kind is FieldType.DATETIME:
        when = _datetime(raw)
        return when.isoformat(), f"({attr} {_SYMBOLS[op]} {_bind(consts, when)})", consts
    if kind is FieldType.STRING_SET:
        if op == "contains":
            tag = _string(raw, allow_empty=False)
            return tag, f"({_bind(consts, tag)} in {attr})", consts
        items = enumerate(_list(raw, op))
        tags = list(dict.fromkeys(_string(t, allow_empty=False, sub=f"[{i}]") for i, t in items))
        wanted = _bind(consts, frozenset(tags))
        negate = "not " if op == "in" else ""
        return tags, f"({negate}{wanted}.isdisjoint({attr}))", consts
    raise AssertionError(f"no compiler for {spec.name} {op}")  # ops are checked before


def _scalar(spec: FieldSpec, raw: object, op: str, sub: str) -> Any:
    """Validate one value of an enum, string or boolean field."""
    if raw is None:
        if spec.nullable and op in ("eq", "ne"):
            return None
        raise _Invalid(f"expected {_expected(spec)}, got null", sub)
    if spec.type is FieldType.BOOLEAN:
        if not isinstance(raw, bool):
            raise _Invalid(f"expected true or false, got {_type_name(raw)}", sub)
        return raw
    if not isinstance(raw, str):
        raise _Invalid(f"expected {_expected(spec)}, got {_type_name(raw)}", sub)
    if spec.values is not None and raw not in spec.values:
        raise _Invalid(
            f"unknown value {raw!r} for field {spec.name!r}{_did_you_mean(raw, spec.values)}; "
            f"allowed: {', '.join(spec.values)}",
            sub,
        )
    return raw


def _expected(spec: FieldSpec) -> str:
    if spec.values is not None:
        return "one of " + ", ".join(spec.values)
    return "a string"


def _list(raw: object, op: str) -> Sequence[object]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise _Invalid(f"operator {op!r} takes a list of values, got {_type_name(raw)}")
    if not raw:
        raise _Invalid(f"operator {op!r} needs at least one value")
    return raw


def _string(raw: object, *, allow_empty: bool, sub: str = "") -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"expected a string, got {_type_name(raw)}", sub)
    if not allow_empty and not raw:
        raise _Invalid("expected a non-empty string", sub)
    return raw


def _datetime(raw: object) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise _Invalid(
                f"expected an ISO 8601 date-time with offset (e.g. '2025-01-31T09:00:00+00:00'), "
                f"got {raw!r}"
            ) from None
    else:
        raise _Invalid(f"expected an ISO 8601 date-time string, got {_type_name(raw)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Invalid(f"date-time {_fmt(raw)} needs a UTC offset (e.g. '+00:00' or 'Z')")
    return value


def _compile_attr(
    name: str, op: str, raw: object, patterns: _Patterns
) -> tuple[Any, str, dict[str, Any]]:
    """Validate raw for custom attribute name; return value, expression and constants."""
    # Every expression starts with "name in a.attrs": a missing attribute fails every
    # condition, ne and not_in included, so rules never act on data an account lacks.
    consts: dict[str, Any] = {}
    key = _bind(consts, name)
    present = f"{key} in a.attrs"
    actual = f"a.attrs[{key}]"
    if op in ("eq", "ne", "in", "not_in"):
        if op in ("eq", "ne"):
            value: Any = _attr_scalar(raw, "")
            values = [value]
        else:
            items = enumerate(_list(raw, op))
            value = list(dict.fromkeys(_attr_scalar(v, f"[{i}]") for i, v in items))
            values = value
        negate = "not " if op in ("ne", "not_in") else ""
        if all(isinstance(v, str) for v in values):
            # Plain set membership is exact for strings: no number or boolean equals one.
            members = _bind(consts, frozenset(values))
            return value, f"({present} and {actual} {negate}in {members})", consts
        # With numbers or booleans in play, compare (kind, value) pairs so True != 1.
        keys = _bind(consts, frozenset(_attr_key(v) for v in values))
        kind_of = _bind(consts, _attr_key)
        return value, f"({present} and {kind_of}({actual}) {negate}in {keys})", consts
    if op in ("lt", "le", "gt", "ge"):
        if not _is_number(raw) or not math.isfinite(raw):  # type: ignore[arg-type]
            raise _Invalid(f"operator {op!r} on a custom attribute takes a number, got {_fmt(raw)}")
        numeric = _bind(consts, frozenset([int, float]))  # by exact class: bool is no number here
        bound = _bind(consts, raw)
        expr = (
            f"({present} and {actual}.__class__ in {numeric} and {actual} {_SYMBOLS[op]} {bound})"
        )
        return raw, expr, consts
    is_str = f"{_bind(consts, isinstance)}({actual}, {_bind(consts, str)})"
    if op == "contains":
        needle = _bind(consts, _string(raw, allow_empty=False).casefold())
        return raw, f"({present} and {is_str} and {needle} in {actual}.casefold())", consts
    search = _bind(consts, patterns.searcher(_string(raw, allow_empty=False)))
    return raw, f"({present} and {is_str} and {search}({actual}))", consts


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _attr_scalar(raw: object, sub: str) -> AttrValue:
    if isinstance(raw, bool | str):
        return raw
    if _is_number(raw) and math.isfinite(raw):  # type: ignore[arg-type]
        return raw  # type: ignore[return-value]
    raise _Invalid(f"expected a string, number or true/false, got {_fmt(raw)}", sub)


def _attr_key(value: object) -> tuple[str, object]:
    # Tag values with their kind so True never equals 1 and '1' never equals 1.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return ("other", id(value))
