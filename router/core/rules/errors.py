"""Report problems found in rule documents, each at its path in the documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleError:
    """Locate one problem in the rule documents, e.g. path 'rules[3].when.all[1].op'."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RuleValidationError(ValueError):
    """Report every problem found in a set of rule documents."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors: list[RuleError] = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} error(s) in routing rules:\n{lines}")


class _Invalid(Exception):
    """Signal a bad value; sub is appended to the value's path (e.g. '[2]')."""

    def __init__(self, message: str, sub: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.sub = sub
