"""Signed webhook delivery and the Intent to Receive check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from xero_sandbox import spec
from xero_sandbox.seed import DEMO_CLIENT_ID, DEMO_WEBHOOK_KEY

from .helpers import new_contact, new_invoice


class Receiver:
    """A webhook endpoint that follows Xero's rules (or breaks them when `honest` is False)."""

    def __init__(self, key: str, honest: bool = True) -> None:
        self.key = key
        self.honest = honest
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                expected = base64.b64encode(
                    hmac.new(receiver.key.encode(), raw, hashlib.sha256).digest()
                ).decode()
                valid = hmac.compare_digest(expected, self.headers.get("x-xero-signature", ""))
                if valid:
                    receiver.received.append(json.loads(raw))
                self.send_response(200 if valid or not receiver.honest else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/xero/webhooks/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, str, str]]:
        return [
            (e["eventCategory"], e["eventType"], e["resourceId"])
            for batch in self.received
            for e in batch["events"]
        ]


@pytest.fixture
def receiver(sandbox) -> Iterator[Receiver]:
    rx = Receiver(DEMO_WEBHOOK_KEY)
    sandbox.configure_app(webhook_url=rx.url)
    yield rx
    rx.server.shutdown()
    rx.server.server_close()


def test_contact_and_invoice_events_are_signed_and_delivered(xero, sandbox, receiver):
    contact = new_contact(xero)
    inv = new_invoice(xero, contact.contact_id)
    sandbox.archive_contact(xero.tenant_id, contact.contact_id)
    assert sandbox.sandbox.webhooks.wait_idle()
    assert receiver.events() == [
        ("CONTACT", "CREATE", contact.contact_id),
        ("INVOICE", "CREATE", inv.invoice_id),
        ("CONTACT", "UPDATE", contact.contact_id),
    ]
    first = receiver.received[0]
    event = first["events"][0]
    assert event["tenantId"] == xero.tenant_id and event["tenantType"] == "ORGANISATION"
    assert event["resourceUrl"].endswith(f"/Contacts/{contact.contact_id}")
    assert first["firstEventSequence"] == 1 and receiver.received[-1]["lastEventSequence"] == 3
    assert all(d["ok"] for d in sandbox.state.webhook_deliveries)
    for batch in receiver.received:
        assert spec.webhook_errors(batch) == []


def test_payment_invoice_update_event_is_a_switch(xero, sandbox, receiver):
    contact = new_contact(xero)
    inv = new_invoice(xero, contact.contact_id)
    sandbox.apply_payment(xero.tenant_id, invoice_id=inv.invoice_id, amount="10.00")
    assert sandbox.sandbox.webhooks.wait_idle()
    assert ("INVOICE", "UPDATE", inv.invoice_id) not in receiver.events()
    sandbox.set_settings(invoice_update_on_payment=True)
    sandbox.apply_payment(xero.tenant_id, invoice_id=inv.invoice_id, amount="10.00")
    assert sandbox.sandbox.webhooks.wait_idle()
    assert ("INVOICE", "UPDATE", inv.invoice_id) in receiver.events()


def test_failed_deliveries_are_recorded_and_retried(xero, sandbox, receiver):
    sandbox.configure_app(webhook_url="http://127.0.0.1:9/nothing-listens-here")
    sandbox.set_settings(webhook_retries=1)
    new_contact(xero)
    assert sandbox.sandbox.webhooks.wait_idle()
    attempts = sandbox.state.webhook_deliveries
    assert [a["attempt"] for a in attempts] == [1, 2] and not any(a["ok"] for a in attempts)


def test_intent_to_receive_through_the_control_api(sandbox, receiver):
    report = requests.post(
        f"{sandbox.url}/__sandbox__/webhooks/itr", json={"client_id": DEMO_CLIENT_ID}, timeout=30
    ).json()
    assert report["passed"] is True
    assert [r["status"] for r in report["results"]] == [200, 401, 200, 401]
    receiver.honest = False  # answers 200 to everything
    report = requests.post(
        f"{sandbox.url}/__sandbox__/webhooks/itr", json={"client_id": DEMO_CLIENT_ID}, timeout=30
    ).json()
    assert report["passed"] is False
    # ITR payloads have empty events and 0/0 sequences.
    assert receiver.received[0] == {
        **receiver.received[0],
        "events": [],
        "firstEventSequence": 0,
        "lastEventSequence": 0,
    }
