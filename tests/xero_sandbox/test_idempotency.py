"""Idempotency-Key: replay, errors cached, mismatch, length, 6-minute window, per app, races."""

from __future__ import annotations

import threading

import pytest
from xero_python.accounting import Contact, Contacts, Invoices
from xero_python.exceptions import AccountingBadRequestException

from xero_sandbox.seed import DEMO_REDIRECT_URIS

from .helpers import error_body, invoice, messages, new_contact


def _create(xero, contact_id, key, **kwargs):
    return xero.accounting.create_invoices(
        xero.tenant_id,
        Invoices(invoices=[invoice(contact_id, **kwargs)]),
        idempotency_key=key,
        _return_http_data_only=False,
    )


def test_replay_returns_the_first_response_exactly(xero, sandbox):
    contact = new_contact(xero)
    first, _s, first_headers = _create(xero, contact.contact_id, "key-1")
    second, _s, second_headers = _create(xero, contact.contact_id, "key-1")
    assert second.invoices[0].invoice_id == first.invoices[0].invoice_id
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 1
    bodies = [
        e["response_body"] for e in sandbox.requests_log() if e.get("idempotency_key") == "key-1"
    ]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    # Replays still count against the rate limits.
    assert (
        int(second_headers["X-MinLimit-Remaining"])
        == int(first_headers["X-MinLimit-Remaining"]) - 1
    )


def test_errors_are_replayed_too(xero, sandbox):
    contact = new_contact(xero)
    sandbox.archive_contact(xero.tenant_id, contact.contact_id)
    with pytest.raises(AccountingBadRequestException) as first:
        _create(xero, contact.contact_id, "key-err")
    with sandbox.state.lock:
        sandbox.org()["contacts"][contact.contact_id]["ContactStatus"] = "ACTIVE"
    with pytest.raises(AccountingBadRequestException) as second:
        _create(xero, contact.contact_id, "key-err")
    assert first.value.body == second.value.body
    assert _create(xero, contact.contact_id, "key-new")[0].invoices[0].status == "AUTHORISED"


def test_same_key_different_request_is_400(xero):
    contact = new_contact(xero)
    _create(xero, contact.contact_id, "key-2", number="A-1")
    with pytest.raises(AccountingBadRequestException) as exc:
        _create(xero, contact.contact_id, "key-2", number="A-2")
    assert (
        error_body(exc.value)["Message"]
        == "Idempotency Key: key-2 is used with a different request."
    )


def test_key_longer_than_128_is_400(xero):
    contact = new_contact(xero)
    _create(xero, contact.contact_id, "k" * 128)
    with pytest.raises(AccountingBadRequestException) as exc:
        _create(xero, contact.contact_id, "k" * 129)
    assert "exceeds the maximum length of 128" in error_body(exc.value)["Message"]


def test_key_expires_after_six_minutes(xero, sandbox):
    contact = new_contact(xero)
    _create(xero, contact.contact_id, "key-3")
    sandbox.clock.advance(5 * 60)
    _create(xero, contact.contact_id, "key-3")
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 1
    sandbox.clock.advance(61)
    _create(xero, contact.contact_id, "key-3")
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 2  # a new request again


def test_keys_are_per_app(xero, sandbox):
    sandbox.configure_app(
        "OTHER-APP", client_secret="other-secret", name="Other", redirect_uris=DEMO_REDIRECT_URIS
    )
    from xero_sandbox.testing import authorize, sdk_client

    grant = authorize(sandbox.url, client_id="OTHER-APP", client_secret="other-secret")
    other = sdk_client(
        sandbox.url, grant.token_set, client_id="OTHER-APP", client_secret="other-secret"
    )
    body = Contacts(contacts=[Contact(name="Shared Key Co")])
    xero.accounting.create_contacts(xero.tenant_id, body, idempotency_key="shared")
    with pytest.raises(AccountingBadRequestException) as exc:  # not a replay: a real duplicate name
        other.accounting.create_contacts(xero.tenant_id, body, idempotency_key="shared")
    assert "already assigned to another contact" in messages(exc.value)[0]


def test_concurrent_repeats_create_once(xero, sandbox):
    contact = new_contact(xero)
    sandbox.set_fault("slow", "PUT /Invoices", delay=0.3, count=1)
    results = []

    def call():
        results.append(_create(xero, contact.contact_id, "key-race")[0].invoices[0].invoice_id)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 3
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 1
