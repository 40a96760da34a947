"""Payments (create, bounds, delete re-opens), credit notes and allocations, edit locks."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from xero_python.accounting import (
    Account,
    Allocation,
    Allocations,
    Contact,
    CreditNote,
    CreditNotes,
    Invoice,
    Invoices,
    Payment,
    PaymentDelete,
    Payments,
)
from xero_python.exceptions import AccountingBadRequestException

from .helpers import DAY, line, messages, new_contact, new_invoice

ALLOCATED = "This document cannot be edited as it has a payment or credit note allocated to it."


@pytest.fixture
def bill(xero):
    contact = new_contact(xero, "Espresso Bar")
    return new_invoice(xero, contact.contact_id, line("100.00"))  # total 115.00


def pay(xero, invoice_id, amount, code="090", **kwargs):
    return xero.accounting.create_payment(
        xero.tenant_id,
        Payment(
            invoice=Invoice(invoice_id=invoice_id),
            account=Account(code=code),
            amount=Decimal(amount),
            date=kwargs.pop("date", DAY),
            **kwargs,
        ),
    ).payments[0]


def test_partial_then_full_payment_marks_paid(xero, bill):
    first = pay(xero, bill.invoice_id, "15.00", reference="dep")
    assert (first.status, first.payment_type, first.amount) == (
        "AUTHORISED",
        "ACCRECPAYMENT",
        Decimal("15.00"),
    )
    inv = xero.accounting.get_invoice(xero.tenant_id, bill.invoice_id).invoices[0]
    assert (inv.status, inv.amount_paid, inv.amount_due) == (
        "AUTHORISED",
        Decimal("15.00"),
        Decimal("100.00"),
    )
    pay(xero, bill.invoice_id, "100.00", date=date(2026, 11, 5))
    inv = xero.accounting.get_invoice(xero.tenant_id, bill.invoice_id).invoices[0]
    assert (inv.status, inv.amount_due, inv.fully_paid_on_date) == (
        "PAID",
        Decimal("0.00"),
        date(2026, 11, 5),
    )
    assert len(inv.payments) == 2
    listed = xero.accounting.get_payments(
        xero.tenant_id, where=f'Invoice.InvoiceID==Guid("{bill.invoice_id}")'
    )
    assert len(listed.payments) == 2


def test_payment_bounded_by_amount_due(xero, bill):
    with pytest.raises(AccountingBadRequestException) as exc:
        pay(xero, bill.invoice_id, "115.01")
    assert messages(exc.value) == ["Payment amount exceeds the amount outstanding on this document"]


@pytest.mark.parametrize(
    "code,expected",
    [
        (
            "200",
            "Account code '200' cannot be used for payments. "
            "Use a bank account or an account with payments enabled.",
        ),
        ("777", "Account must be valid."),
    ],
)
def test_payment_account_must_accept_payments(xero, bill, code, expected):
    with pytest.raises(AccountingBadRequestException) as exc:
        pay(xero, bill.invoice_id, "10.00", code=code)
    assert messages(exc.value) == [expected]


def test_payment_on_draft_rejected(xero):
    contact = new_contact(xero, "Drafty")
    draft = new_invoice(xero, contact.contact_id, status="DRAFT")
    with pytest.raises(AccountingBadRequestException) as exc:
        pay(xero, draft.invoice_id, "1.00")
    assert messages(exc.value) == ["Payments can only be made against Authorised documents."]


def test_deleting_a_payment_reopens_the_invoice(xero, bill):
    payment = pay(xero, bill.invoice_id, "115.00")
    assert xero.accounting.get_invoice(xero.tenant_id, bill.invoice_id).invoices[0].status == "PAID"
    deleted = xero.accounting.delete_payment(
        xero.tenant_id, payment.payment_id, PaymentDelete(status="DELETED")
    ).payments[0]
    assert deleted.status == "DELETED"
    inv = xero.accounting.get_invoice(xero.tenant_id, bill.invoice_id).invoices[0]
    assert (inv.status, inv.amount_paid, inv.amount_due, inv.fully_paid_on_date) == (
        "AUTHORISED",
        Decimal("0.00"),
        Decimal("115.00"),
        None,
    )
    assert (
        xero.accounting.get_payment(xero.tenant_id, payment.payment_id).payments[0].status
        == "DELETED"
    )
    with pytest.raises(AccountingBadRequestException) as again:
        xero.accounting.delete_payment(
            xero.tenant_id, payment.payment_id, PaymentDelete(status="DELETED")
        )
    assert messages(again.value) == ["Payment has already been deleted."]


def test_no_edits_or_void_once_a_payment_is_allocated(xero, bill):
    pay(xero, bill.invoice_id, "10.00")
    for change in (
        Invoice(reference="new ref"),
        Invoice(status="VOIDED"),
        Invoice(line_items=[line("1.00")]),
    ):
        with pytest.raises(AccountingBadRequestException) as exc:
            xero.accounting.update_invoice(
                xero.tenant_id, bill.invoice_id, Invoices(invoices=[change])
            )
        assert messages(exc.value) == [ALLOCATED]


def test_payments_batch_with_summarize_false(xero, bill):
    result = xero.accounting.create_payments(
        xero.tenant_id,
        Payments(
            payments=[
                Payment(
                    invoice=Invoice(invoice_id=bill.invoice_id),
                    account=Account(code="090"),
                    amount=Decimal("5"),
                    date=DAY,
                ),
                Payment(
                    invoice=Invoice(invoice_id=bill.invoice_id),
                    account=Account(code="090"),
                    amount=Decimal("500"),
                    date=DAY,
                ),
            ]
        ),
        summarize_errors=False,
    )
    ok, bad = result.payments
    assert ok.status_attribute_string == "OK"
    assert (bad.status_attribute_string, bad.has_validation_errors) == ("ERROR", True)


def _credit_note(xero, contact_id, amount="20.00", status="AUTHORISED", **line_kwargs):
    return xero.accounting.create_credit_notes(
        xero.tenant_id,
        CreditNotes(
            credit_notes=[
                CreditNote(
                    type="ACCRECCREDIT",
                    contact=Contact(contact_id=contact_id),
                    status=status,
                    date=DAY,
                    line_items=[line(amount, **line_kwargs)],
                )
            ]
        ),
    ).credit_notes[0]


def test_credit_note_allocation_updates_both_documents(xero, bill):
    note = _credit_note(xero, bill.contact.contact_id)  # 23.00
    assert (note.credit_note_number, note.total, note.remaining_credit) == (
        "CN-0001",
        Decimal("23.00"),
        Decimal("23.00"),
    )
    allocation = xero.accounting.create_credit_note_allocation(
        xero.tenant_id,
        note.credit_note_id,
        Allocations(
            allocations=[
                Allocation(
                    invoice=Invoice(invoice_id=bill.invoice_id), amount=Decimal("23.00"), date=DAY
                )
            ]
        ),
    )
    assert allocation.allocations[0].amount == Decimal("23.00")
    inv = xero.accounting.get_invoice(xero.tenant_id, bill.invoice_id).invoices[0]
    assert (inv.amount_credited, inv.amount_due, inv.status) == (
        Decimal("23.00"),
        Decimal("92.00"),
        "AUTHORISED",
    )
    note = xero.accounting.get_credit_note(xero.tenant_id, note.credit_note_id).credit_notes[0]
    assert (note.remaining_credit, note.status) == (Decimal("0.00"), "PAID")
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.update_invoice(
            xero.tenant_id, bill.invoice_id, Invoices(invoices=[Invoice(reference="x")])
        )
    assert messages(exc.value) == [ALLOCATED]


def test_allocation_limits_and_messages(xero, bill):
    note = _credit_note(xero, bill.contact.contact_id, amount="200.00")  # 230.00 of credit
    with pytest.raises(AccountingBadRequestException) as too_much:
        xero.accounting.create_credit_note_allocation(
            xero.tenant_id,
            note.credit_note_id,
            Allocations(
                allocations=[
                    Allocation(
                        invoice=Invoice(invoice_id=bill.invoice_id),
                        amount=Decimal("116.00"),
                        date=DAY,
                    )
                ]
            ),
        )
    assert messages(too_much.value) == [
        "Credit Note cannot be allocated as amount is greater than amount outstanding"
    ]
    pay(xero, bill.invoice_id, "115.00")
    with pytest.raises(AccountingBadRequestException) as paid:
        xero.accounting.create_credit_note_allocation(
            xero.tenant_id,
            note.credit_note_id,
            Allocations(
                allocations=[
                    Allocation(
                        invoice=Invoice(invoice_id=bill.invoice_id),
                        amount=Decimal("1.00"),
                        date=DAY,
                    )
                ]
            ),
        )
    assert messages(paid.value) == [
        "The invoice you are trying to allocate to has already been paid off"
    ]
    draft_note = _credit_note(xero, bill.contact.contact_id, status="DRAFT")
    with pytest.raises(AccountingBadRequestException) as draft:
        xero.accounting.create_credit_note_allocation(
            xero.tenant_id,
            draft_note.credit_note_id,
            Allocations(
                allocations=[
                    Allocation(
                        invoice=Invoice(invoice_id=bill.invoice_id),
                        amount=Decimal("1.00"),
                        date=DAY,
                    )
                ]
            ),
        )
    assert "Credit Note must be Authorised before it can be allocated." in messages(draft.value)


def test_credit_notes_do_not_take_discounts(xero, bill):
    with pytest.raises(AccountingBadRequestException) as exc:
        _credit_note(xero, bill.contact.contact_id, discount_rate=Decimal("5"))
    assert messages(exc.value) == ["Discounts are not supported on credit notes."]


def test_foreign_currency_invoice_paid_from_base_bank_and_payments_enabled_account(xero, sandbox):
    from xero_python.accounting import CurrencyCode

    contact = new_contact(xero, "Sydney Roasters")
    usd = new_invoice(
        xero,
        contact.contact_id,
        line("10.00"),
        currency_code=CurrencyCode.USD,
        currency_rate=Decimal("0.6"),
    )
    assert usd.currency_rate == Decimal("0.6")
    payment = pay(xero, usd.invoice_id, "11.50")
    assert payment.invoice.currency_code.value == "USD"
    other = new_invoice(xero, contact.contact_id, line("10.00"))
    with sandbox.state.lock:
        prepayments = next(a for a in sandbox.org()["accounts"].values() if a["Code"] == "620")
        prepayments["EnablePaymentsToAccount"] = True
    assert pay(xero, other.invoice_id, "1.00", code="620").account.code == "620"
