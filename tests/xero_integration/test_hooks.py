"""Billing changes queue the right Xero work in the same transaction."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from admin_jobs.models import BackgroundJob, JobKind, JobState
from billing.models import Customer
from billing.services import (
    LineInput,
    customer_delete,
    customer_update,
    invoice_update,
)
from core.models import AccountingPackage
from core.services import general_settings_update
from tests.billing.factories import CustomerFactory, EntityFactory
from tests.xero_integration.test_invoice_sync import _run_all
from xero_integration.models import XeroRecordLink

pytestmark = pytest.mark.django_db


def test_release_queues_the_contact_and_invoice_pushes(world):
    invoice = world.invoice()
    invoice_job = BackgroundJob.objects.get(kind=JobKind.PUSH_INVOICE)
    assert invoice_job.target_object_id == invoice.pk
    assert invoice_job.depends_on.kind == JobKind.PUSH_CONTACT
    _run_all()
    invoice_job.refresh_from_db()
    assert invoice_job.state == JobState.SUCCEEDED
    assert [i["InvoiceNumber"] for i in world.xero_invoices()] == [invoice.number]


def test_nothing_is_queued_for_an_entity_without_xero_or_another_package(world):
    general_settings_update(accounting_package=AccountingPackage.QUICKBOOKS, user=None)
    world.invoice()
    assert not BackgroundJob.objects.filter(kind=JobKind.PUSH_INVOICE).exists()


def test_a_transferred_invoice_is_locked(world):
    invoice = world.invoice()
    _run_all()
    with pytest.raises(ValidationError) as exc:
        invoice_update(invoice=invoice, data={"reference": "late change"})
    assert exc.value.messages == [
        f"Invoice {invoice.number} has been transferred to Xero and Kiwi Coffee Roasters Ltd "
        "locks invoices once transferred. Raise a credit note for it and issue a corrected "
        "invoice instead."
    ]
    invoice.refresh_from_db()
    assert invoice.reference == ""


def test_with_the_lock_off_a_correction_is_pushed_as_an_update(world):
    world.entity.lock_invoices_when_transferred = False
    world.entity.save()
    invoice = world.invoice()
    _run_all()
    start = world.xero_env.sandbox.last_seq()
    invoice = invoice_update(
        invoice=invoice, data={"reference": "PO 78"},
        lines=[LineInput(description="Beans 1kg", quantity=Decimal("3"),
                         unit_price=Decimal("24.50"), account_id=world.sales.pk,
                         tax_rate_id=world.gst.pk)],
    )  # fmt: skip
    _run_all()
    xero_invoice = world.xero_invoice(invoice.number)
    assert (xero_invoice["Reference"], Decimal(str(xero_invoice["Total"]))) == (
        "PO 78",
        invoice.total,
    )
    calls = [(e["method"], e["path"]) for e in world.xero_env.sandbox.requests_log(start)]
    assert ("POST", "/api.xro/2.0/Invoices") in calls
    assert len(world.xero_invoices()) == 1


def test_a_customer_linked_to_xero_cannot_be_deleted(world):
    world.invoice()
    _run_all()
    with pytest.raises(ValidationError) as exc:
        customer_delete(customer=world.customer)
    assert exc.value.messages[0].startswith(
        "Harbour Cafe is linked to a Xero contact, so it cannot be deleted"
    )
    assert Customer.objects.filter(pk=world.customer.pk).exists()


def test_editing_a_synced_customer_queues_a_push(world):
    world.invoice()
    _run_all()
    customer_update(customer=world.customer, data={"email": "new@harbour.example"})
    job = BackgroundJob.objects.filter(kind=JobKind.PUSH_CONTACT).order_by("-pk").first()
    assert job.state == JobState.QUEUED
    _run_all()
    link = XeroRecordLink.objects.get(content_type__model="customer", object_id=world.customer.pk)
    contact = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)["contacts"][link.xero_id]
    assert contact["EmailAddress"] == "new@harbour.example"


def test_editing_a_customer_never_synced_queues_nothing():
    customer = CustomerFactory(entity=EntityFactory())
    customer_update(customer=customer, data={"email": "x@y.example"})
    assert not BackgroundJob.objects.exists()
