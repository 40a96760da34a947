"""Small builders for SDK model objects used across the sandbox tests."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from xero_python.accounting import Contact, Contacts, Invoice, Invoices, LineItem
from xero_python.exceptions import ApiException

DAY = date(2026, 11, 2)
DUE = date(2026, 11, 30)


def line(
    amount: str = "100.00",
    *,
    qty: str = "1",
    account: str = "200",
    tax: str | None = "OUTPUT2",
    **kwargs: Any,
) -> LineItem:
    return LineItem(
        description=kwargs.pop("description", "Coffee beans"),
        quantity=Decimal(qty),
        unit_amount=Decimal(amount),
        account_code=account,
        tax_type=tax,
        **kwargs,
    )


def invoice(
    contact_id: str,
    *lines: LineItem,
    status: str = "AUTHORISED",
    number: str | None = None,
    **kwargs: Any,
) -> Invoice:
    return Invoice(
        type="ACCREC",
        contact=Contact(contact_id=contact_id),
        line_items=list(lines) or [line()],
        status=status,
        invoice_number=number,
        date=kwargs.pop("date", DAY),
        due_date=kwargs.pop("due_date", DUE),
        **kwargs,
    )


def new_contact(client: Any, name: str = "Flat White Cafe", **kwargs: Any) -> Contact:
    return client.accounting.create_contacts(
        client.tenant_id, Contacts(contacts=[Contact(name=name, **kwargs)])
    ).contacts[0]


def new_invoice(client: Any, contact_id: str, *lines: LineItem, **kwargs: Any) -> Invoice:
    return client.accounting.create_invoices(
        client.tenant_id, Invoices(invoices=[invoice(contact_id, *lines, **kwargs)])
    ).invoices[0]


def error_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def messages(exc: ApiException) -> list[str]:
    """Every ValidationErrors message of a 400 ValidationException, in order."""
    body = error_body(exc)
    return [
        m["Message"]
        for element in body.get("Elements", [])
        for m in element.get("ValidationErrors", [])
    ]
