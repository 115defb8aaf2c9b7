"""The web worker's read deadline: a base allowance, more per byte received, and a ceiling."""

from __future__ import annotations

import time

import pytest

from router.serving import MAX_READ_SECONDS, ReadDeadline


def test_the_allowance_grows_with_the_bytes_received_up_to_a_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    deadline = ReadDeadline(timeout=10, min_rate=32_768)
    assert deadline.remaining() == pytest.approx(10)
    deadline.received = 32_768 * 5
    assert deadline.remaining() == pytest.approx(15)
    # A 25 MiB body at the minimum rate would earn 800 s; it gets the ceiling.
    deadline.received = 25 * 1024 * 1024
    assert deadline.remaining() == pytest.approx(MAX_READ_SECONDS)
    clock[0] += MAX_READ_SECONDS
    assert deadline.remaining() <= 0
