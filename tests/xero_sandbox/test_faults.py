"""Faults on demand: 500, 503, 429, slow, commit_then_drop, lost refresh reply, disconnects."""

from __future__ import annotations

import time

import pytest
import urllib3
from xero_python.accounting import Contact, Contacts, Invoices
from xero_python.exceptions import HTTPStatusException, RateLimitException

from xero_sandbox.seed import DEMO_UK_TENANT_ID

from .helpers import invoice, new_contact


@pytest.mark.parametrize("status", [500, 503])
def test_error_fault_for_n_requests(xero, sandbox, status):
    sandbox.set_fault("error", "GET /Organisation", status=status, count=2)
    for _ in range(2):
        with pytest.raises(HTTPStatusException) as exc:
            xero.accounting.get_organisations(xero.tenant_id)
        assert exc.value.status == status
    assert xero.accounting.get_organisations(xero.tenant_id).organisations
    assert [e["fault"] for e in sandbox.requests_log() if e["path"].endswith("/Organisation")][
        :2
    ] == [f"error:{status}"] * 2


def test_fault_scoped_to_an_organisation_and_probability(xero, sandbox):
    sandbox.set_fault("error", "*", status=503, tenant_id=DEMO_UK_TENANT_ID, count=None)
    sandbox.set_fault("error", "*", status=500, probability=0.0, count=None)
    assert xero.accounting.get_organisations(xero.tenant_id).organisations
    with pytest.raises(HTTPStatusException) as exc:
        xero.accounting.get_organisations(DEMO_UK_TENANT_ID)
    assert exc.value.status == 503


def test_injected_429_carries_retry_after(xero, sandbox):
    sandbox.set_fault("rate_limit", "GET /Contacts", retry_after=7, problem="minute")
    with pytest.raises(RateLimitException) as exc:
        xero.accounting.get_contacts(xero.tenant_id)
    assert exc.value.headers["Retry-After"] == "7" and exc.value.rate_limit == "minute"


def test_slow_reply_times_out_the_client_but_the_write_happens(xero, sandbox):
    sandbox.set_fault("slow", "PUT /Contacts", delay=0.5)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        xero.accounting.create_contacts(
            xero.tenant_id, Contacts(contacts=[Contact(name="Slowpoke")]), _request_timeout=(1, 0.1)
        )  # int or (connect, read) only
    names: list[str] = []
    for _ in range(100):  # the server finishes the write after its 0.5 s delay
        names = [c.name for c in xero.accounting.get_contacts(xero.tenant_id).contacts]
        if names:
            break
        time.sleep(0.05)
    assert names == ["Slowpoke"]


def test_commit_then_drop_creates_the_record_and_replay_finds_it(xero, sandbox):
    contact = new_contact(xero)
    sandbox.set_fault("commit_then_drop", "PUT /Invoices")
    body = Invoices(invoices=[invoice(contact.contact_id, number="DROP-1")])
    with pytest.raises(urllib3.exceptions.ProtocolError):
        xero.accounting.create_invoices(xero.tenant_id, body, idempotency_key="drop-key")
    stored = xero.accounting.get_invoices(xero.tenant_id, invoice_numbers=["DROP-1"]).invoices
    assert len(stored) == 1
    retried = xero.accounting.create_invoices(
        xero.tenant_id, body, idempotency_key="drop-key"
    ).invoices[0]
    assert retried.invoice_id == stored[0].invoice_id
    assert len(xero.accounting.get_invoices(xero.tenant_id).invoices) == 1


def test_refresh_reply_lost_recovers_within_grace(xero, sandbox):
    old = dict(xero.token)
    sandbox.set_fault("token_reply_lost")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        xero.api_client.refresh_oauth2_token()
    assert xero.token["refresh_token"] == old["refresh_token"]  # the client never saw the new set
    recovered = xero.api_client.refresh_oauth2_token()  # old token, inside the 30-minute grace
    assert recovered["refresh_token"] != old["refresh_token"]
    assert xero.accounting.get_organisations(xero.tenant_id).organisations


def test_xero_side_disconnect_gives_403(xero, sandbox):
    sandbox.disconnect(DEMO_UK_TENANT_ID)
    assert xero.accounting.get_organisations(xero.tenant_id).organisations  # NZ still connected
    with pytest.raises(HTTPStatusException) as exc:
        xero.accounting.get_organisations(DEMO_UK_TENANT_ID)
    assert exc.value.status == 403


def test_xero_side_disconnect_with_revoke_gives_401_and_invalid_grant(xero, sandbox):
    sandbox.set_fault("disconnect", "GET /Contacts", revoke=True)
    with pytest.raises(HTTPStatusException) as exc:
        xero.accounting.get_contacts(xero.tenant_id)
    assert exc.value.status == 401
    with pytest.raises(HTTPStatusException) as refresh:
        xero.api_client.refresh_oauth2_token()
    assert refresh.value.body == b'{"error":"invalid_grant"}'


def test_500_inside_the_idempotency_window_is_replayed(xero, sandbox):
    sandbox.set_fault("error", "PUT /Contacts", status=500)
    body = Contacts(contacts=[Contact(name="Fragile")])
    for _ in range(2):
        with pytest.raises(HTTPStatusException) as exc:
            xero.accounting.create_contacts(xero.tenant_id, body, idempotency_key="k500")
        assert exc.value.status == 500
    assert (
        xero.accounting.create_contacts(xero.tenant_id, body, idempotency_key="k500-b")
        .contacts[0]
        .name
        == "Fragile"
    )
