"""Which X-Forwarded-* value the app believes: only the one its outermost trusted proxy wrote."""

from __future__ import annotations

import pytest

from router.core.validation import trusted_forwarded


@pytest.mark.parametrize(
    ("lines", "trusted", "believed"),
    [
        (["203.0.113.9"], 0, None),  # no trusted proxy: the client's own text
        (["198.51.100.1, 203.0.113.9"], 1, "203.0.113.9"),
        (["198.51.100.1, 203.0.113.9"], 2, "198.51.100.1"),
        (["198.51.100.1", "203.0.113.9"], 1, "203.0.113.9"),  # two lines: one list
        (["203.0.113.9"], 2, None),  # did not come through both proxies
        (["203.0.113.9, "], 1, None),  # an empty value is none
        ([], 1, None),
    ],
)
def test_trusted_forwarded(lines: list[str], trusted: int, believed: str | None) -> None:
    assert trusted_forwarded(lines, trusted) == believed
