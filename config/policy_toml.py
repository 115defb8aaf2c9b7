"""Read policy TOML so that every problem names the file and the key an operator must fix."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class PolicyError(ValueError):
    """A policy file is missing, unreadable or wrong; the message names file and key."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + message)


class Table:
    """A TOML table read with its key path, so every error names file and key."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise PolicyError(file, path, f"must be a table, not {type_name(data)}")
        self.file, self.path, self.data = file, path, data
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        """Return the full key path of ``name`` in this table."""
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> PolicyError:
        """Return a PolicyError about ``name`` in this table."""
        return PolicyError(self.file, self.key(name), message)

    def get(self, name: str, kind: type[T], default: T | None = None, required: bool = True) -> T:
        """Return the value of ``name``, checked to be of ``kind``."""
        self._seen.add(name)
        if name not in self.data:
            if default is not None or not required:
                return default  # type: ignore[return-value]
            near = difflib.get_close_matches(name, [k for k in self.data if k not in self._seen])
            hint = f"; {near[0]!r} looks like a misspelling of it" if near else ""
            raise self.error(name, "is required" + hint)
        value = self.data[name]
        # bool is an int in Python; a policy file's true is never a number.
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
            raise self.error(name, f"must be {type_name(kind)}, not {type_name(value)}")
        return value

    def strings(self, name: str, required: bool = False) -> tuple[str, ...]:
        """Return the list of strings under ``name``."""
        values = self.get(name, list, [] if not required else None)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(f"{name}[{index}]", f"must be a string, not {type_name(value)}")
        return tuple(values)

    def table(self, name: str, required: bool = True) -> Table:
        """Return the sub-table under ``name``."""
        return Table(self.file, self.key(name), self.get(name, dict, {} if not required else None))

    def tables(self, name: str) -> Iterator[tuple[str, Table]]:
        """Yield (key, table) for every sub-table of the section ``name``."""
        section = self.table(name)
        section._seen.update(section.data)
        for key, value in section.data.items():
            yield key, Table(self.file, section.key(key), value)

    def done(self) -> None:
        """Refuse any key that was never read (a misspelling or an unsupported key)."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (misspelt, or not supported here)")


def type_name(value: Any) -> str:
    """Name a TOML type, or the type of a value, as a policy message says it."""
    kind = value if isinstance(value, type) else type(value)
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(kind, kind.__name__)


def enum_value(table: Table, name: str, raw: str, enum: type[T]) -> T:
    """Return the ``enum`` member ``raw`` names, or raise PolicyError listing the allowed values."""
    try:
        return enum(raw)  # type: ignore[call-arg]
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)  # type: ignore[attr-defined]
        raise table.error(name, f"unknown value {raw!r}; expected one of {allowed}") from None


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(table: Table, name: str, raw: str) -> timedelta:
    """Return a duration such as '4h', '90m' or '1h30m'."""
    match = _DURATION.match(raw.strip())
    if not raw.strip() or not match:
        raise table.error(name, f"must be a duration like '4h', '90m' or '1h30m', not {raw!r}")
    hours, minutes = (int(group or 0) for group in match.groups())
    duration = timedelta(hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise table.error(name, "must be longer than zero")
    return duration


def read_policy_file(directory: Path, name: str) -> tuple[str, dict[str, Any]]:
    """Return (path, data) of ``directory``/``name``.toml, or raise PolicyError."""
    path = directory / f"{name}.toml"
    label = str(path)
    try:
        with path.open("rb") as handle:
            return label, tomllib.load(handle)
    except FileNotFoundError:
        raise PolicyError(label, "", "policy file is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(label, "", f"not valid TOML: {exc}") from None
