"""Xero's Idempotency-Key (xero-api-notes.md §3, reliability-notes.md §1.3).

* keys are per app, at most 128 characters, honoured on PUT/POST/PATCH only;
* the first response (errors included) is replayed for 6 minutes of sandbox time from the first
  call; after that the key is new again;
* the same key with a different request (method, path, query, tenant or body) -> 400;
* a concurrent repeat waits for the first request and gets its response.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock

WINDOW_SECONDS = 360.0
MAX_KEY_LENGTH = 128


@dataclass
class Entry:
    fingerprint: str
    created: float
    done: threading.Event = field(default_factory=threading.Event)
    response: Any = None


def fingerprint(method: str, path: str, query: str, tenant_id: str | None, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper(), path, query, tenant_id or ""):
        digest.update(part.encode("utf-8") + b"\x00")
    digest.update(body)
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()

    def begin(self, client_id: str, key: str, print_: str) -> tuple[str, Entry]:
        """Returns ("new", entry) to run the request, ("replay", entry) or ("mismatch", entry)."""
        now = self.clock.timestamp()
        with self._lock:
            entry = self._entries.get((client_id, key))
            if entry is not None and now - entry.created > WINDOW_SECONDS:
                entry = None
            if entry is None:
                entry = Entry(print_, now)
                self._entries[(client_id, key)] = entry
                return "new", entry
        if entry.fingerprint != print_:
            return "mismatch", entry
        entry.done.wait(timeout=120)
        return "replay", entry

    def finish(self, entry: Entry, response: Any) -> None:
        entry.response = response
        entry.done.set()

    def abandon(self, client_id: str, key: str, entry: Entry) -> None:
        """A request that never ran (e.g. it crashed) must not leave waiters hanging."""
        with self._lock:
            if self._entries.get((client_id, key)) is entry:
                del self._entries[(client_id, key)]
        entry.done.set()
