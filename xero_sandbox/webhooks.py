"""Webhook delivery (xero-api-notes.md §6).

Events are queued by request handlers and POSTed by a background thread, so API replies never
wait for a receiver. Signature: header `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw
body)). Failed deliveries are retried (`webhook_retries`, short real-time backoff - Xero retries
with decreasing frequency for 24 h, which a sandbox cannot usefully imitate). Every attempt is
recorded in `State.webhook_deliveries`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import secrets
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from .state import State

RETRY_DELAYS = (0.2, 1.0, 3.0)
RESOURCE_BASE = "https://api.xero.com/api.xro/2.0"  # what Xero puts in resourceUrl
COLLECTIONS = {"CONTACT": "Contacts", "INVOICE": "Invoices"}
RECEIVER_TIMEOUT = 5.0  # WH-CFG: the receiver must answer within 5 seconds


def sign(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def _event_date(moment: datetime) -> str:
    # WH-SPEC example `2024-06-21T01:15:39.902` (no zone suffix).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def post(
    url: str, body: bytes, signature: str
) -> tuple[int | None, bytes, dict[str, str], str | None]:
    request = urllib.request.Request(  # noqa: S310 - receiver URL is configured by the operator
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "x-xero-signature": signature,
            "User-Agent": "Xero-Sandbox-Webhooks",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=RECEIVER_TIMEOUT) as response:  # noqa: S310
            return response.status, response.read(), dict(response.headers), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers or {}), None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return None, b"", {}, str(exc)


class WebhookDispatcher:
    def __init__(self, state: State) -> None:
        self.state = state
        self._queue: queue.Queue[tuple[str, list[dict[str, Any]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="xero-sandbox-webhooks", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Tests: block until every queued delivery (and its retries) has finished."""
        return self._idle.wait(timeout)

    def emit(self, tenant_id: str, events: list[tuple[str, str, str]]) -> None:
        """Queue CONTACT/INVOICE CREATE/UPDATE events for every app connected to the tenant."""
        if not events or not self.state.settings.get("webhooks_enabled", True):
            return
        now = self.state.now()
        with self.state.lock:
            connected = {
                c["client_id"]
                for c in self.state.data["connections"].values()
                if c["tenantId"] == tenant_id
            }
            apps = [
                a for cid, a in self.state.apps.items() if cid in connected and a.get("webhook_url")
            ]
        for app in apps:
            payload_events = [
                {
                    "resourceUrl": f"{RESOURCE_BASE}/{COLLECTIONS[cat]}/{rid}",
                    "resourceId": rid,
                    "eventDateUtc": _event_date(now),
                    "eventType": kind,
                    "eventCategory": cat,
                    "tenantId": tenant_id,
                    "tenantType": "ORGANISATION",
                }
                for cat, kind, rid in events
            ]
            with self._pending_lock:
                self._pending += 1
                self._idle.clear()
            self._queue.put((app["client_id"], payload_events))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            client_id, events = item
            try:
                self._deliver(client_id, events)
            finally:
                with self._pending_lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

    def _deliver(self, client_id: str, events: list[dict[str, Any]]) -> None:
        with self.state.lock:
            app = self.state.apps.get(client_id)
            if app is None or not app.get("webhook_url"):
                return
            sequences = self.state.data["webhook_sequence"]
            first = sequences.get(client_id, 0) + 1
            last = first + len(events) - 1
            sequences[client_id] = last
            url, key = app["webhook_url"], app["webhook_key"]
            retries = int(self.state.settings.get("webhook_retries", 2))
        body = json.dumps(
            {
                "events": events,
                "firstEventSequence": first,
                "lastEventSequence": last,
                "entropy": secrets.token_hex(10).upper(),
            }
        ).encode()
        for attempt in range(retries + 1):
            status, _reply, _headers, error = post(url, body, sign(key, body))
            ok = status is not None and 200 <= status < 300
            with self.state.lock:
                self.state.webhook_deliveries.append(
                    {
                        "client_id": client_id,
                        "url": url,
                        "attempt": attempt + 1,
                        "status": status,
                        "error": error,
                        "ok": ok,
                        "body": body.decode(),
                        "first_sequence": first,
                        "time": self.state.now().isoformat(),
                    }
                )
            if ok:
                return
            if attempt < retries:
                time.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])


def intent_to_receive(url: str, key: str) -> dict[str, Any]:
    """Xero's "Intent to Receive" check (WH-CFG): correctly signed payloads must get 200 with an
    empty body and no cookies; incorrectly signed ones must get 401."""
    results = []
    for good in (True, False, True, False):
        body = json.dumps(
            {
                "events": [],
                "lastEventSequence": 0,
                "firstEventSequence": 0,
                "entropy": secrets.token_hex(10).upper(),
            }
        ).encode()
        signature = sign(key, body) if good else sign(key + "-wrong", body)
        started = time.monotonic()
        status, reply, headers, error = post(url, body, signature)
        elapsed = time.monotonic() - started
        has_cookie = any(h.lower() == "set-cookie" for h in headers)
        if good:
            passed = (
                status == 200 and reply == b"" and not has_cookie and elapsed < RECEIVER_TIMEOUT
            )
        else:
            passed = status == 401 and elapsed < RECEIVER_TIMEOUT
        results.append(
            {
                "correctly_signed": good,
                "status": status,
                "body_length": len(reply),
                "set_cookie": has_cookie,
                "seconds": round(elapsed, 3),
                "error": error,
                "passed": passed,
            }
        )
    return {"passed": all(r["passed"] for r in results), "url": url, "results": results}
