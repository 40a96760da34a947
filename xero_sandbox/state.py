"""In-memory state of the sandbox: apps, users, organisations and their documents.

Everything lives in one dict tree (`State.data`) of plain values (Decimal for money, date and
datetime for time) guarded by one re-entrant lock; that keeps save/load (--data FILE) trivial and
makes every request handler atomic with respect to the others.
"""

from __future__ import annotations

import collections
import copy
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from .clock import Clock
from .jsonutil import persist_dumps, persist_loads

DEFAULT_LIMITS: dict[str, Any] = {
    # xero-api-notes.md §1: per (app, organisation) 5 concurrent, 60/min, 5000/day; 10,000/min/app.
    "enabled": True,
    "concurrent": 5,
    "minute": 60,
    "day": 5000,
    "app_minute": 10000,
}

DEFAULT_SETTINGS: dict[str, Any] = {
    "auto_approve": False,  # global consent auto-approve (tests); per app: app["auto_approve"]
    "auto_approve_tenants": None,  # optional list of tenant ids to grant when auto-approving
    # xero-api-notes.md §6: whether applying a payment fires INVOICE UPDATE is not confirmed.
    "invoice_update_on_payment": False,
    "webhooks_enabled": True,
    "webhook_retries": 2,
    "validate_requests": True,
}

LOG_LIMIT = 20000


def new_id() -> str:
    return str(uuid.uuid4())


def empty_data() -> dict[str, Any]:
    return {
        "apps": {},
        "users": {},
        "orgs": {},
        "connections": {},
        "grants": {},
        "refresh_tokens": {},
        "access_tokens": {},
        "auth_codes": {},
        "settings": copy.deepcopy(DEFAULT_SETTINGS),
        "limits": copy.deepcopy(DEFAULT_LIMITS),
        "webhook_sequence": {},
    }


class State:
    """The store plus the logs tests read. All mutation happens under `lock`."""

    def __init__(self, clock: Clock | None = None, data: dict[str, Any] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.data: dict[str, Any] = data if data is not None else empty_data()
        self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_LIMIT)
        self.rate_limited: list[dict[str, Any]] = []
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.data_file: Path | None = None
        self._log_seq = 0

    # --- lifecycle -------------------------------------------------------------------------
    def replace(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.data = data
            for key, value in empty_data().items():
                self.data.setdefault(key, value)
            self.request_log.clear()
            self.rate_limited.clear()
            self.webhook_deliveries.clear()

    def save(self, path: Path | None = None) -> Path | None:
        target = path or self.data_file
        if target is None:
            return None
        with self.lock:
            text = persist_dumps(self.data)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
        return target

    def load(self, path: Path) -> None:
        self.replace(persist_loads(path.read_text(encoding="utf-8")))

    def now(self) -> datetime:
        return self.clock.now()

    # --- lookups ---------------------------------------------------------------------------
    @property
    def apps(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.data["apps"])

    @property
    def orgs(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.data["orgs"])

    @property
    def settings(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.data["settings"])

    @property
    def limits(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.data["limits"])

    def org(self, tenant_id: str) -> dict[str, Any] | None:
        return self.orgs.get(tenant_id)

    def connections_for(self, client_id: str, user_id: str) -> list[dict[str, Any]]:
        return [
            c
            for c in self.data["connections"].values()
            if c["client_id"] == client_id and c["user_id"] == user_id
        ]

    # --- logs ------------------------------------------------------------------------------
    def log_request(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._log_seq += 1
            entry["seq"] = self._log_seq
            self.request_log.append(entry)
            if entry.get("rate_limited"):
                self.rate_limited.append(entry)
        return entry

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.data)
