"""The retained ``current`` message: when a counter's present state must be (re)sent (pure, no I/O)."""

from __future__ import annotations

from typing import Any


class CurrentState:
    """Says when to publish ``current``: on every change of the body, and again after each (re)connect."""

    def __init__(self) -> None:
        """Nothing sent yet."""
        self._last: dict[str, Any] | None = None
        self._connects = 0

    def due(self, body: dict[str, Any], connects: int) -> bool:
        """Whether ``body`` must go out now (it changed, or the broker may have lost the retained copy)."""
        if body == self._last and connects <= self._connects:
            return False
        self._last, self._connects = body, max(connects, self._connects)
        return True
