"""A small read-only HTML view of each organisation, so "View in Xero" opens a real page.

/__sandbox__/ui/                                  organisations
/__sandbox__/ui/<tenant>/                         contacts, invoices, payments, credits, journals
/__sandbox__/ui/<tenant>/contacts/<ContactID>     contact detail (+ archive form)
/__sandbox__/ui/<tenant>/invoices/<InvoiceID>     invoice detail (+ apply payment form)
The two POST forms "play Xero's side" through control.py.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from . import control
from .identity import HttpReply
from .rules import ValidationFailure

if TYPE_CHECKING:
    from .server import Request, Sandbox

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;
margin-bottom:2em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#eef}
.num{text-align:right}.banner{background:#13b5ea;color:#fff;padding:.5em 1em;margin:-2em -2em 1em}
.error{color:#b00}a{color:#0366d6}"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str, status: int = 200) -> HttpReply:
    return HttpReply.html(
        status,
        f"""<!doctype html><html><head><meta charset="utf-8">
<title>{e(title)} - Xero sandbox</title><style>{STYLE}</style></head><body>
<div class="banner"><a href="/__sandbox__/ui/" style="color:#fff">Xero sandbox</a></div>
<h1>{e(title)}</h1>{body}</body></html>""",
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>none</td></tr>'}</table>"


def money(value: Any) -> str:
    text = "" if value is None else Decimal(value).quantize(Decimal("0.01"))
    return f'<span class="num">{e(text)}</span>'


def handle(sb: Sandbox, req: Request, parts: list[str]) -> HttpReply:
    state = sb.state
    with state.lock:
        if not parts:
            rows = [
                [
                    f'<a href="/__sandbox__/ui/{o["tenant_id"]}/">'
                    f"{e(o['organisation']['Name'])}</a>",
                    e(o["organisation"]["BaseCurrency"]),
                    e(o["timezone"]),
                    e(o["tenant_id"]),
                ]
                for o in state.orgs.values()
            ]
            apps = [
                [
                    e(a["client_id"]),
                    e(a["name"]),
                    e(", ".join(a["redirect_uris"])),
                    e(a.get("webhook_url")),
                ]
                for a in state.apps.values()
            ]
            return page(
                "Organisations",
                table(["Name", "Currency", "Timezone", "Tenant ID"], rows)
                + "<h2>Apps</h2>"
                + table(["Client ID", "Name", "Redirect URIs", "Webhook URL"], apps)
                + f"<p>Sandbox time: {e(sb.clock.now().isoformat())}</p>",
            )
        org = state.org(parts[0])
        if org is None:
            return page("Not found", "<p>No such organisation.</p>", 404)
        base = f"/__sandbox__/ui/{org['tenant_id']}"
        if len(parts) == 1:
            return _overview(org, base)
        if len(parts) >= 3 and parts[1] == "contacts":
            contact = org["contacts"].get(parts[2])
            if contact is None:
                return page("Not found", "<p>No such contact.</p>", 404)
            if len(parts) == 4 and parts[3] == "archive" and req.method == "POST":
                control.archive_contact(sb, org["tenant_id"], contact["ContactID"])
                return HttpReply.redirect(f"{base}/contacts/{contact['ContactID']}")
            return _contact(org, contact, base)
        if len(parts) >= 3 and parts[1] == "invoices":
            invoice = org["invoices"].get(parts[2])
            if invoice is None:
                return page("Not found", "<p>No such invoice.</p>", 404)
            error = ""
            if len(parts) == 4 and parts[3] == "pay" and req.method == "POST":
                form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
                try:
                    control.apply_payment(
                        sb,
                        org["tenant_id"],
                        amount=form.get("amount", "0"),
                        invoice_id=invoice["InvoiceID"],
                        account_code=form.get("account", "090"),
                        payment_date=form.get("date") or None,
                        reference=form.get("reference", ""),
                    )
                    return HttpReply.redirect(f"{base}/invoices/{invoice['InvoiceID']}")
                except ValidationFailure as failure:
                    error = "".join(f'<p class="error">{e(m)}</p>' for m in failure.messages)
            return _invoice(org, invoice, base, error)
    return page("Not found", "<p>Unknown page.</p>", 404)


def _overview(org: dict[str, Any], base: str) -> HttpReply:
    contacts = [
        [
            f'<a href="{base}/contacts/{c["ContactID"]}">{e(c["Name"])}</a>',
            e(c.get("ContactNumber")),
            e(c["ContactStatus"]),
            e(c.get("EmailAddress")),
        ]
        for c in org["contacts"].values()
    ]
    names = {c["ContactID"]: c["Name"] for c in org["contacts"].values()}
    invoices = [
        [
            f'<a href="{base}/invoices/{i["InvoiceID"]}">{e(i["InvoiceNumber"])}</a>',
            e(names.get(i["ContactID"])),
            e(i["Date"]),
            e(i["Status"]),
            money(i["Total"]),
            money(i["AmountDue"]),
            e(i["CurrencyCode"]),
        ]
        for i in org["invoices"].values()
    ]
    payments = [
        [
            e(p["Date"]),
            money(p["Amount"]),
            e(p["Status"]),
            f'<a href="{base}/invoices/{p["InvoiceID"]}">'
            f"{e(org['invoices'].get(p['InvoiceID'], {}).get('InvoiceNumber'))}</a>",
            e(p["Account"]["Code"]),
            e(p["PaymentID"]),
        ]
        for p in org["payments"].values()
    ]
    credits = [
        [
            e(c["CreditNoteNumber"]),
            e(names.get(c["ContactID"])),
            e(c["Status"]),
            money(c["Total"]),
            money(c.get("RemainingCredit")),
        ]
        for c in org["credit_notes"].values()
    ]
    journals = [
        [
            e(j["Date"]),
            e(j["Narration"]),
            e(j["Status"]),
            e("; ".join(f"{ln['AccountCode']} {ln['LineAmount']}" for ln in j["JournalLines"])),
        ]
        for j in org["manual_journals"].values()
    ]
    lock = org.get("period_lock_date")
    body = (
        f"<p>Tenant {e(org['tenant_id'])} &middot; {e(org['organisation']['BaseCurrency'])}"
        f" &middot; lock date {e(lock or 'none')}</p>"
        "<h2>Contacts</h2>"
        + table(["Name", "Contact number", "Status", "Email"], contacts)
        + "<h2>Invoices</h2>"
        + table(["Number", "Contact", "Date", "Status", "Total", "Due", "Currency"], invoices)
        + "<h2>Payments</h2>"
        + table(["Date", "Amount", "Status", "Invoice", "Account", "ID"], payments)
        + "<h2>Credit notes</h2>"
        + table(["Number", "Contact", "Status", "Total", "Remaining"], credits)
        + "<h2>Manual journals</h2>"
        + table(["Date", "Narration", "Status", "Lines"], journals)
    )
    return page(org["organisation"]["Name"], body)


def _contact(org: dict[str, Any], contact: dict[str, Any], base: str) -> HttpReply:
    invoices = [
        [
            f'<a href="{base}/invoices/{i["InvoiceID"]}">{e(i["InvoiceNumber"])}</a>',
            e(i["Status"]),
            money(i["Total"]),
            money(i["AmountDue"]),
        ]
        for i in org["invoices"].values()
        if i["ContactID"] == contact["ContactID"]
    ]
    fields = "".join(
        f"<tr><th>{e(k)}</th><td>{e(contact.get(k))}</td></tr>"
        for k in (
            "ContactID",
            "Name",
            "ContactNumber",
            "AccountNumber",
            "ContactStatus",
            "EmailAddress",
            "IsCustomer",
            "UpdatedDateUTC",
        )
    )
    archive = ""
    if contact["ContactStatus"] == "ACTIVE":
        archive = (
            f'<form method="post" action="{base}/contacts/{contact["ContactID"]}/archive">'
            '<button type="submit" id="archive">Archive contact (as a Xero user)</button></form>'
        )
    return page(
        contact["Name"],
        f"<table>{fields}</table>{archive}<h2>Invoices</h2>"
        + table(["Number", "Status", "Total", "Due"], invoices),
    )


def _invoice(org: dict[str, Any], invoice: dict[str, Any], base: str, error: str) -> HttpReply:
    contact = org["contacts"].get(invoice["ContactID"], {})
    lines = [
        [
            e(ln.get("Description")),
            e(ln.get("Quantity")),
            e(ln.get("UnitAmount")),
            e(ln.get("AccountCode")),
            e(ln.get("TaxType")),
            money(ln.get("TaxAmount")),
            money(ln.get("LineAmount")),
        ]
        for ln in invoice["LineItems"]
    ]
    payments = [
        [e(p["Date"]), money(p["Amount"]), e(p["Reference"]), e(p["PaymentID"])]
        for p in invoice["Payments"]
    ]
    fields = "".join(
        f"<tr><th>{e(k)}</th><td>{v}</td></tr>"
        for k, v in [
            (
                "Contact",
                f'<a href="{base}/contacts/{e(contact.get("ContactID"))}">'
                f"{e(contact.get('Name'))}</a>",
            ),
            ("Status", e(invoice["Status"])),
            ("Date", e(invoice["Date"])),
            ("Due date", e(invoice.get("DueDate"))),
            ("Reference", e(invoice.get("Reference"))),
            ("Line amounts", e(invoice["LineAmountTypes"])),
            ("Sub total", money(invoice["SubTotal"])),
            ("Tax", money(invoice["TotalTax"])),
            ("Total", money(invoice["Total"])),
            ("Paid", money(invoice["AmountPaid"])),
            ("Credited", money(invoice["AmountCredited"])),
            ("Amount due", money(invoice["AmountDue"])),
            ("Currency", e(invoice["CurrencyCode"])),
            ("Updated (UTC)", e(invoice["UpdatedDateUTC"])),
        ]
    )
    pay_form = ""
    if invoice["Status"] == "AUTHORISED":
        pay_form = (
            f"<h2>Apply a payment (as a Xero user)</h2>{error}"
            f'<form method="post" action="{base}/invoices/{invoice["InvoiceID"]}/pay">'
            f'Amount <input name="amount" value="{e(invoice["AmountDue"])}"> '
            'Account <input name="account" value="090" size="5"> '
            'Date <input name="date" placeholder="YYYY-MM-DD" size="10"> '
            'Reference <input name="reference"> '
            '<button type="submit" id="pay">Apply payment</button></form>'
        )
    return page(
        f"Invoice {invoice['InvoiceNumber']}",
        f"<table>{fields}</table><h2>Lines</h2>"
        + table(["Description", "Qty", "Unit", "Account", "Tax type", "Tax", "Amount"], lines)
        + "<h2>Payments</h2>"
        + table(["Date", "Amount", "Reference", "ID"], payments)
        + pay_form,
    )
