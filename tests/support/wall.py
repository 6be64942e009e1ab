"""A wall clock tests move by hand (sessions, tokens and rate limits read wall time)."""

from __future__ import annotations

import time


class Wall:
    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(start if start is not None else time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
