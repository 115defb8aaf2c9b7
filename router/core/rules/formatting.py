"""Render rule values and types for people, in traces and in error messages."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from datetime import datetime
from enum import Enum
from typing import Any


def _plain(value: object) -> Any:
    return value.value if isinstance(value, Enum) else value


def _fmt(value: object) -> str:
    """Render a value for humans: strings quoted, enums by value, tags sorted."""
    if isinstance(value, Enum):
        return repr(value.value)
    if isinstance(value, datetime):
        return repr(value.isoformat())
    if isinstance(value, frozenset | set):
        return repr(sorted(_plain(v) for v in value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if value is None:
        return "not set"
    return repr(value)


def _copy_value(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "a table/object",
        type(None): "null",
    }
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, Mapping):
        return "a table/object"
    return type(value).__name__


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(values: Collection[str]) -> str:
    return ", ".join(sorted(values)) if values else "(none defined)"
