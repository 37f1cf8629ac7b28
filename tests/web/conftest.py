"""Fixtures the web tests share."""

from __future__ import annotations

import time

import pytest


class Clock:
    """Wall and monotonic time that move only when a test says so."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Freeze ``time.time`` and ``time.monotonic`` (what the rate-limit counters read)."""
    c = Clock()
    monkeypatch.setattr(time, "time", lambda: c.wall)
    monkeypatch.setattr(time, "monotonic", lambda: c.mono)
    return c
