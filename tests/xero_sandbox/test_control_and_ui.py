"""The control API (JSON) and the read-only web UI with its two "Xero user" forms."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import requests

from xero_sandbox.seed import DEMO_CLIENT_ID, DEMO_NZ_TENANT_ID
from xero_sandbox.server import Sandbox

from .helpers import new_contact, new_invoice


def test_control_routes(sandbox, xero):
    base = f"{sandbox.url}/__sandbox__"
    assert "routes" in requests.get(base + "/", timeout=5).json()
    orgs = requests.get(base + "/orgs", timeout=5).json()
    assert {o["name"] for o in orgs} == {"Kiwi Coffee Roasters Ltd", "Kiwi Coffee Roasters UK Ltd"}
    before = requests.get(base + "/clock", timeout=5).json()["now"]
    after = requests.post(base + "/clock", json={"advance_seconds": 60}, timeout=5).json()["now"]
    assert after > before
    assert (
        requests.post(base + "/clock", json={"time_scale": 10}, timeout=5).json()["time_scale"]
        == 10
    )
    requests.post(base + "/clock", json={"time_scale": 1}, timeout=5)
    fault = requests.post(
        base + "/faults",
        json={"kind": "error", "route": "GET /Organisation", "status": 503},
        timeout=5,
    ).json()
    assert requests.get(base + "/faults", timeout=5).json()[0]["id"] == fault["id"]
    requests.delete(base + "/faults", timeout=5)
    assert requests.get(base + "/faults", timeout=5).json() == []
    limits = requests.post(base + "/limits", json={"minute": 100}, timeout=5).json()
    assert limits["limits"]["minute"] == 100
    created = requests.post(
        base + "/orgs",
        json={
            "name": "Third Org",
            "base_currency": "AUD",
            "timezone": "Australia/Sydney",
            "country": "AU",
        },
        timeout=5,
    ).json()
    assert any(
        o["tenant_id"] == created["tenant_id"]
        for o in requests.get(base + "/orgs", timeout=5).json()
    )
    xero.accounting.get_organisations(xero.tenant_id)
    log = requests.get(base + "/requests", timeout=5).json()
    last = log[-1]
    assert (
        last["method"],
        last["path"],
        last["tenant_id"],
        last["status"],
        last["rate_limited"],
    ) == ("GET", "/api.xro/2.0/Organisation", xero.tenant_id, 200, False)
    assert requests.get(base + "/rate-limited", timeout=5).json() == []
    state = requests.get(base + "/state", timeout=5).json()
    assert DEMO_CLIENT_ID in state["apps"]
    assert requests.post(base + "/nope", timeout=5).status_code == 404


def test_control_plays_xeros_side(sandbox, xero):
    base = f"{sandbox.url}/__sandbox__/orgs/{DEMO_NZ_TENANT_ID}"
    contact = new_contact(xero)
    inv = new_invoice(xero, contact.contact_id)
    paid = requests.post(
        base + "/payments", json={"InvoiceID": inv.invoice_id, "Amount": "115.00"}, timeout=5
    ).json()
    assert xero.accounting.get_invoice(xero.tenant_id, inv.invoice_id).invoices[0].status == "PAID"
    too_much = requests.post(
        base + "/payments", json={"InvoiceID": inv.invoice_id, "Amount": "1.00"}, timeout=5
    )
    assert too_much.status_code == 400
    requests.post(f"{base}/payments/{paid['PaymentID']}/delete", timeout=5).raise_for_status()
    assert (
        xero.accounting.get_invoice(xero.tenant_id, inv.invoice_id).invoices[0].status
        == "AUTHORISED"
    )
    requests.post(f"{base}/contacts/{contact.contact_id}/archive", timeout=5).raise_for_status()
    assert (
        xero.accounting.get_contact(xero.tenant_id, contact.contact_id).contacts[0].contact_status
        == "ARCHIVED"
    )
    requests.post(
        f"{sandbox.url}/__sandbox__/disconnect", json={"tenant_id": DEMO_NZ_TENANT_ID}, timeout=5
    ).raise_for_status()
    assert [str(c.tenant_id) for c in xero.identity.get_connections()] != [DEMO_NZ_TENANT_ID]


def test_web_ui_pages_and_forms(sandbox, xero):
    contact = new_contact(xero, "UI Cafe")
    inv = new_invoice(xero, contact.contact_id, number="UI-1")
    ui = f"{sandbox.url}/__sandbox__/ui"
    assert "Kiwi Coffee Roasters Ltd" in requests.get(ui + "/", timeout=5).text
    overview = requests.get(f"{ui}/{DEMO_NZ_TENANT_ID}/", timeout=5).text
    assert "UI Cafe" in overview and "UI-1" in overview
    detail = requests.get(f"{ui}/{DEMO_NZ_TENANT_ID}/invoices/{inv.invoice_id}", timeout=5)
    assert detail.status_code == 200 and "Apply payment" in detail.text
    paid = requests.post(
        f"{ui}/{DEMO_NZ_TENANT_ID}/invoices/{inv.invoice_id}/pay",
        data={"amount": "15.00", "account": "090"},
        timeout=5,
    )
    assert paid.status_code == 200  # redirected back to the detail page
    assert xero.accounting.get_invoice(xero.tenant_id, inv.invoice_id).invoices[
        0
    ].amount_paid == Decimal("15.00")
    error = requests.post(
        f"{ui}/{DEMO_NZ_TENANT_ID}/invoices/{inv.invoice_id}/pay",
        data={"amount": "999.00", "account": "090"},
        timeout=5,
    )
    assert "exceeds the amount outstanding" in error.text
    page = requests.get(f"{ui}/{DEMO_NZ_TENANT_ID}/contacts/{contact.contact_id}", timeout=5)
    assert "UI-1" in page.text
    requests.post(f"{ui}/{DEMO_NZ_TENANT_ID}/contacts/{contact.contact_id}/archive", timeout=5)
    assert (
        xero.accounting.get_contact(xero.tenant_id, contact.contact_id).contacts[0].contact_status
        == "ARCHIVED"
    )
    assert requests.get(f"{ui}/{DEMO_NZ_TENANT_ID}/invoices/nope", timeout=5).status_code == 404


def test_state_persists_to_a_json_file(tmp_path: Path):
    data = tmp_path / "sandbox.json"
    first = Sandbox(seed="demo", data_file=data, webhook_url="")
    from xero_sandbox import control

    ctx_contact = control.xero_ctx(first, DEMO_NZ_TENANT_ID)
    from xero_sandbox.accounting import contact_apply

    with first.state.lock:
        contact_apply(ctx_contact, {"Name": "Persisted Ltd"}, None)
    first.save()
    first.stop()
    second = Sandbox(seed="demo", data_file=data)
    names = [c["Name"] for c in second.state.orgs[DEMO_NZ_TENANT_ID]["contacts"].values()]
    second.stop()
    assert names == ["Persisted Ltd"]
