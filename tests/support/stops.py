"""A job's stop check (``guard.Stop``) made from a test's function: ``Calls(f).check()`` calls ``f``."""

from __future__ import annotations

from collections.abc import Callable


class Calls:
    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check

    def check(self) -> None:
        self._check()
