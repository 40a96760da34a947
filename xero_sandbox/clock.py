"""The sandbox clock: real time, shifted by tests and optionally sped up.

Every time-based rule (rate-limit windows, token and code expiry, refresh grace, the idempotency
window, UpdatedDateUTC) reads this clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """now() = anchor + (real elapsed since anchor) * scale."""

    def __init__(self, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._anchor_real = time.monotonic()
        self._anchor_value = datetime.now(UTC)
        self._scale = float(scale)

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._anchor_real) * self._scale
            return self._anchor_value + timedelta(seconds=elapsed)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def _reanchor(self, value: datetime) -> None:
        self._anchor_real = time.monotonic()
        self._anchor_value = value

    def advance(self, seconds: float) -> datetime:
        """Jump forward (or back, with a negative value) by `seconds` of sandbox time."""
        current = self.now()
        with self._lock:
            self._reanchor(current + timedelta(seconds=seconds))
        return self.now()

    def set(self, value: datetime) -> datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        with self._lock:
            self._reanchor(value.astimezone(UTC))
        return self.now()

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, scale: float) -> None:
        """Speed time up (10 => a sandbox minute passes in 6 real seconds)."""
        if scale <= 0:
            raise ValueError("time scale must be positive")
        current = self.now()
        with self._lock:
            self._reanchor(current)
            self._scale = float(scale)

    def reset(self) -> None:
        with self._lock:
            self._reanchor(datetime.now(UTC))
            self._scale = 1.0
