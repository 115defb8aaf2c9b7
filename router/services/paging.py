"""Page through lists: one count and one bounded query per page."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and where it sits in the whole."""

    items: tuple[T, ...]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """Return how many pages the whole list fills."""
        return math.ceil(self.total / self.per_page) if self.total else 0

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        """Return the same page with each item converted."""
        return Page(
            tuple(convert(item) for item in self.items), self.page, self.per_page, self.total
        )


def contains_text(text: str, *columns: Any) -> ColumnElement[bool]:
    """Return a filter: any of ``columns`` contains ``text``, case-insensitively and literally."""
    # LIKE's wildcards in the search text are escaped: searching "50%" or "a_b" finds just that.
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    needle = f"%{escaped}%"
    return or_(*(func.lower(column).like(needle, escape="\\") for column in columns))


def query_page(session: Session, stmt: Select[T], page: int, per_page: int) -> Page[T]:
    """Run ``stmt`` for one page of its entities."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.limit(per_page).offset((page - 1) * per_page))
    return Page(tuple(rows), page, per_page, total)


def list_page(items: Sequence[T], page: int, per_page: int) -> Page[T]:
    """Return one page of an in-memory list."""
    start = (page - 1) * per_page
    return Page(tuple(items[start : start + per_page]), page, per_page, len(items))
