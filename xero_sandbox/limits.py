"""Xero's rate limits per (app, organisation) and per app, counted on the sandbox clock.

xero-api-notes.md §1 / reliability-notes.md §3: 5 concurrent, 60 per rolling minute, 5,000 per
day per (app, tenant); 10,000 per minute per app. Only admitted requests count (a 429 does not
consume quota - not confirmed, it is the reading that lets a well-behaved client recover).
The daily window is modelled as rolling 24 h (Xero's is a per-tenant fixed window, notes §1,
"resets at a different time per tenant"); Retry-After is computed from the oldest counted call.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock

MINUTE = 60.0
DAY = 86400.0


@dataclass
class Decision:
    allowed: bool
    problem: str | None = None
    retry_after: int = 0
    headers: dict[str, str] | None = None
    slot: tuple[str, str] | None = None


class RateLimiter:
    def __init__(self, clock: Clock, config: dict[str, Any]) -> None:
        self.clock = clock
        self.config = config
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, str], collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._day: dict[tuple[str, str], collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._app_minute: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._in_flight: dict[tuple[str, str], int] = collections.defaultdict(int)

    def reset(self, config: dict[str, Any]) -> None:
        with self._lock:
            self.config = config
            self._minute.clear()
            self._day.clear()
            self._app_minute.clear()
            self._in_flight.clear()

    @staticmethod
    def _trim(window: collections.deque[float], now: float, span: float) -> None:
        while window and window[0] <= now - span:
            window.popleft()

    @staticmethod
    def _retry_after(window: collections.deque[float], now: float, span: float) -> int:
        if not window:
            return 1
        return max(1, math.ceil(window[0] + span - now))

    def app_only(self, client_id: str) -> Decision:
        """Tenantless calls (/connections) count against the app minute limit only."""
        now = self.clock.timestamp()
        cfg = self.config
        with self._lock:
            app_window = self._app_minute[client_id]
            self._trim(app_window, now, MINUTE)
            if cfg["enabled"] and len(app_window) >= cfg["app_minute"]:
                return Decision(
                    False,
                    "appminute",
                    self._retry_after(app_window, now, MINUTE),
                    {"X-AppMinLimit-Remaining": "0"},
                )
            app_window.append(now)
            return Decision(
                True,
                headers={
                    "X-AppMinLimit-Remaining": str(max(0, cfg["app_minute"] - len(app_window)))
                },
            )

    def acquire(self, client_id: str, tenant_id: str) -> Decision:
        now = self.clock.timestamp()
        cfg = self.config
        key = (client_id, tenant_id)
        with self._lock:
            minute = self._minute[key]
            day = self._day[key]
            app_window = self._app_minute[client_id]
            self._trim(minute, now, MINUTE)
            self._trim(day, now, DAY)
            self._trim(app_window, now, MINUTE)

            def headers(extra: int = 0) -> dict[str, str]:
                return {
                    "X-DayLimit-Remaining": str(max(0, cfg["day"] - len(day) - extra)),
                    "X-MinLimit-Remaining": str(max(0, cfg["minute"] - len(minute) - extra)),
                    "X-AppMinLimit-Remaining": str(
                        max(0, cfg["app_minute"] - len(app_window) - extra)
                    ),
                }

            if cfg["enabled"]:
                # Checked from the longest window down, so a client told "day" does not retry
                # in a minute only to be refused again.
                if len(day) >= cfg["day"]:
                    return Decision(False, "day", self._retry_after(day, now, DAY), headers())
                if len(app_window) >= cfg["app_minute"]:
                    return Decision(
                        False, "appminute", self._retry_after(app_window, now, MINUTE), headers()
                    )
                if len(minute) >= cfg["minute"]:
                    return Decision(
                        False, "minute", self._retry_after(minute, now, MINUTE), headers()
                    )
                if self._in_flight[key] >= cfg["concurrent"]:
                    # Retry-After for the concurrent limit is not confirmed (notes §1): 1 second.
                    return Decision(False, "concurrent", 1, headers())
            minute.append(now)
            day.append(now)
            app_window.append(now)
            self._in_flight[key] += 1
            return Decision(True, headers=headers(), slot=key)

    def release(self, slot: tuple[str, str] | None) -> None:
        if slot is None:
            return
        with self._lock:
            self._in_flight[slot] = max(0, self._in_flight[slot] - 1)

    def usage(self) -> dict[str, Any]:
        now = self.clock.timestamp()
        with self._lock:
            result: dict[str, Any] = {}
            for (client_id, tenant_id), window in self._minute.items():
                self._trim(window, now, MINUTE)
                result[f"{client_id}/{tenant_id}"] = {
                    "minute": len(window),
                    "day": len(self._day[(client_id, tenant_id)]),
                    "in_flight": self._in_flight[(client_id, tenant_id)],
                }
            return result
