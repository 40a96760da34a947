"""What a billing change means for Xero, called by billing services inside their transaction (so
the job is written with the change, never lost between them). Nothing here calls Xero."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from admin_jobs.models import JobTrigger
from billing.models import CreditNote, Customer, Invoice, Payment
from core.selectors import xero_is_enabled

# A module import: payment_sync imports billing.services, which imports this module.
from xero_integration import payment_sync
from xero_integration.contact_sync import customer_after_change, customer_is_linked
from xero_integration.invoice_sync import (
    credit_note_push_enqueue,
    invoice_is_transferred,
    invoice_push_enqueue,
)


def customer_changed(*, customer: Customer, user: AbstractBaseUser | None = None) -> None:
    if xero_is_enabled():
        customer_after_change(customer=customer, user=user)


def customer_delete_refusal(*, customer: Customer) -> str | None:
    if customer_is_linked(customer):
        return (
            f"{customer.name} is linked to a Xero contact, so it cannot be deleted: deleting it "
            "would leave Xero's contact without its BMS record. Archive it instead, or use Delete "
            "Integration on its page first."
        )
    return None


def invoice_released(*, invoice: Invoice, user: AbstractBaseUser | None = None) -> None:
    if xero_is_enabled():
        invoice_push_enqueue(invoice=invoice, triggered_by=JobTrigger.SYSTEM, user=user)


def invoice_edit_refusal(*, invoice: Invoice) -> str | None:
    """Lock invoices when transferred: a pushed invoice is corrected with a credit note and a
    re-issued invoice instead of an edit."""
    if invoice.entity.lock_invoices_when_transferred and invoice_is_transferred(invoice):
        return (
            f"Invoice {invoice.number} has been transferred to Xero and "
            f"{invoice.entity.name} locks invoices once transferred. Raise a credit note for it "
            "and issue a corrected invoice instead."
        )
    return None


def invoice_changed(*, invoice: Invoice, user: AbstractBaseUser | None = None) -> None:
    """A correction or void of an invoice already in Xero is pushed as an update."""
    if xero_is_enabled() and invoice_is_transferred(invoice):
        invoice_push_enqueue(invoice=invoice, triggered_by=JobTrigger.SYSTEM, user=user)


def credit_note_released(*, credit_note: CreditNote) -> None:
    if xero_is_enabled():
        credit_note_push_enqueue(credit_note=credit_note, triggered_by=JobTrigger.SYSTEM)


def credit_note_allocated(*, credit_note: CreditNote) -> None:
    """An allocation reaches Xero after both the credit note and its invoice do."""
    if xero_is_enabled():
        credit_note_push_enqueue(credit_note=credit_note, triggered_by=JobTrigger.SYSTEM)


def payment_recorded(*, payment: Payment, user: AbstractBaseUser | None = None) -> None:
    """A cheque or transfer recorded in BMS goes to Xero against its invoice."""
    if xero_is_enabled():
        payment_sync.payment_push_enqueue(
            payment=payment, user=user, triggered_by=JobTrigger.SYSTEM
        )
