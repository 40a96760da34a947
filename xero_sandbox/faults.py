"""Faults injected on demand, per route (method + path pattern) and per organisation.

Kinds (reliability-notes.md §5.1):
* ``error``            reply with ``status`` (500 or 503) and a small JSON body;
* ``rate_limit``       reply 429 with ``Retry-After`` and ``X-Rate-Limit-Problem`` (``problem``);
* ``slow``             sleep ``delay`` real seconds, then handle the request normally;
* ``commit_then_drop`` handle the request (state changes are kept), then close the socket
                       without a reply. On ``POST /connect/token`` this is "refresh committed,
                       reply lost" (alias kind ``token_reply_lost``);
* ``disconnect``       act as if the user disconnected the app in Xero just before this request:
                       the tenant's connection is removed (and with ``revoke`` the token set is
                       revoked) so the request itself gets 403/401.
A fault fires for the next ``count`` matching requests (None = until cleared), each with
``probability`` (default 1.0).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = {"error", "rate_limit", "slow", "commit_then_drop", "token_reply_lost", "disconnect"}


@dataclass
class Fault:
    kind: str
    route: str = "*"  # "PUT /Invoices", "POST /connect/token", "* /Invoices*", "*"
    tenant_id: str | None = None
    count: int | None = 1
    probability: float = 1.0
    status: int = 500
    retry_after: int = 30
    problem: str = "minute"
    delay: float = 1.0
    revoke: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fired: int = 0

    def matches(self, method: str, path: str, tenant_id: str | None) -> bool:
        if self.tenant_id and self.tenant_id != tenant_id:
            return False
        want_method, _, want_path = self.route.strip().partition(" ")
        if not want_path:
            want_method, want_path = "*", want_method
        if want_method != "*" and want_method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(
            path.lower().rstrip("/") or "/", want_path.lower().rstrip("/") or "/"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultSet:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not security

    def add(self, **spec: Any) -> Fault:
        kind = spec.get("kind", "")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
        if kind == "token_reply_lost":
            spec = {
                **spec,
                "kind": "commit_then_drop",
                "route": spec.get("route") or "POST /connect/token",
            }
        known = set(Fault.__dataclass_fields__) - {"id", "fired"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, fault_id: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if fault_id and f.id != fault_id]

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take(self, method: str, path: str, tenant_id: str | None, kinds: set[str]) -> Fault | None:
        """The first armed fault of one of `kinds` for this request; consumes one use."""
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault.matches(method, path, tenant_id):
                    continue
                if fault.count is not None and fault.count <= 0:
                    continue
                if fault.probability < 1.0 and self._random.random() >= fault.probability:
                    continue
                if fault.count is not None:
                    fault.count -= 1
                fault.fired += 1
                return fault
            return None
