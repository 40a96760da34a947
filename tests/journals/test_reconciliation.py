"""Reconciliation compares synced records with the sandbox and reports each drift with links."""

from datetime import timedelta
from decimal import Decimal
from typing import cast

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from xero_python.accounting import Contact, Contacts, Invoice, Invoices, LineItem

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import Customer
from billing.models import Invoice as BmsInvoice
from journals.reconciliation import xero_reconcile_enqueue, xero_reconcile_schedule
from journals.services import cost_of_sales_journals_run
from tests.billing.factories import CustomerFactory
from tests.journals.conftest import at, move_to, run_journal_jobs
from tests.xero_integration.factories import XeroRecordLinkFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.urls("tests.journals.urls"),
]


def _reconcile(org):
    job = xero_reconcile_enqueue(connection=org.connection, triggered_by="schedule")
    assert job is not None
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def synced(kiwi, xero_env, d1):
    """An invoice and its customer pushed to Xero (through the SDK, as the push will) and linked,
    plus one posted journal."""
    move_to(xero_env, at(d1, 10))
    customer = cast(Customer, CustomerFactory(entity=kiwi.entity, name="Flat White Cafe"))
    invoice = kiwi.release_invoice("5")
    BmsInvoice.objects.filter(pk=invoice.pk).update(customer=customer)
    sdk = xero_env.sandbox.client()
    tenant = kiwi.tenant_id
    contact = sdk.accounting.create_contacts(
        tenant, Contacts(contacts=[Contact(name="Flat White Cafe", contact_number="BMS-C1")])
    ).contacts[0]
    xero_invoice = sdk.accounting.create_invoices(
        tenant,
        Invoices(
            invoices=[
                Invoice(
                    type="ACCREC",
                    contact=Contact(contact_id=contact.contact_id),
                    invoice_number=invoice.number,
                    date=d1,
                    due_date=invoice.due_date,
                    status="AUTHORISED",
                    line_items=[
                        LineItem(
                            description="Beans",
                            quantity=Decimal("5"),
                            unit_amount=Decimal("10.00"),
                            account_code="200",
                            tax_type="OUTPUT2",
                        )
                    ],
                )
            ]
        ),
    ).invoices[0]
    assert Decimal(str(xero_invoice.total)) == invoice.total == Decimal("57.50")
    XeroRecordLinkFactory(
        entity=kiwi.entity,
        tenant_id=tenant,
        content_type=ContentType.objects.get_for_model(BmsInvoice),
        object_id=invoice.pk,
        xero_id=xero_invoice.invoice_id,
        xero_number=invoice.number,
    )
    XeroRecordLinkFactory(
        entity=kiwi.entity,
        tenant_id=tenant,
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=customer.pk,
        xero_id=contact.contact_id,
        xero_number="BMS-C1",
    )
    move_to(xero_env, at(d1 + timedelta(days=1), 2))
    cost_of_sales_journals_run()
    run_journal_jobs()
    return {
        "invoice": invoice,
        "customer": customer,
        "xero_invoice_id": xero_invoice.invoice_id,
        "contact_id": contact.contact_id,
    }


def test_a_clean_organisation_reconciles_without_drift(kiwi, synced):
    job = _reconcile(kiwi)
    assert job.state == JobState.SUCCEEDED
    assert job.result["checked"] == {"invoices": 1, "contacts": 1, "journals": 1}
    assert job.result["drifts"] == []


def test_a_payment_and_a_rename_made_in_xero_are_reported_with_links(
    kiwi, synced, xero_env, admin_client
):
    tenant = kiwi.tenant_id
    xero_env.sandbox.apply_payment(tenant, invoice_id=synced["xero_invoice_id"], amount="20.00")
    sdk = xero_env.sandbox.client()  # a fresh token: the fixture's expired as time moved on
    sdk.accounting.update_contact(
        tenant,
        synced["contact_id"],
        Contacts(contacts=[Contact(name="Flat White Cafe Ltd")]),
    )
    [job] = xero_reconcile_schedule()
    job_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.kind == JobKind.RECONCILE
    assert job.state == JobState.FAILED  # on the Background Jobs page like any error
    assert job.error_message.startswith(
        "2 difference(s) between BMS and Xero organisation “Kiwi Coffee Roasters Ltd”"
    )
    invoice = synced["invoice"]
    assert f"Invoice {invoice.number}: amount paid is 0.00 in BMS but 20.00 in Xero" in (
        job.error_message
    )
    assert isinstance(job.error_detail, dict)
    drifts = {(d["kind"], d["field"]): d for d in job.error_detail["drifts"]}
    assert set(drifts) == {("invoice", "amount paid"), ("contact", "name")}
    paid = drifts["invoice", "amount paid"]
    assert paid["bms_url"] == invoice.get_absolute_url()
    assert paid["xero_url"] == (
        f"{xero_env.sandbox.url}/__sandbox__/ui/{tenant}/invoices/{synced['xero_invoice_id']}"
    )
    renamed = drifts["contact", "name"]
    assert (renamed["bms"], renamed["xero"]) == ("Flat White Cafe", "Flat White Cafe Ltd")
    assert renamed["bms_url"] == synced["customer"].get_absolute_url()
    assert renamed["xero_url"].endswith(f"/contacts/{synced['contact_id']}")

    page = admin_client.get(reverse("journals:reconciliation")).content.decode()
    assert "Flat White Cafe Ltd" in page
    assert synced["xero_invoice_id"] in page

    # Fixing BMS's side (here: recording the payment Xero has) makes the next run clean, and it
    # resolves the earlier failure.
    BmsInvoice.objects.filter(pk=invoice.pk).update(
        amount_paid=Decimal("20.00"), amount_due=Decimal("37.50")
    )
    Customer.objects.filter(pk=synced["customer"].pk).update(name="Flat White Cafe Ltd")
    clean = _reconcile(kiwi)
    assert clean.state == JobState.SUCCEEDED
    job.refresh_from_db()
    assert job.resolved_at is not None


def test_a_journal_missing_or_duplicated_in_xero_is_reported(kiwi, synced, xero_env):
    journals = xero_env.sandbox.org(kiwi.tenant_id)["manual_journals"]
    [journal_id] = list(journals)
    journals.pop(journal_id)
    job = _reconcile(kiwi)
    assert job.state == JobState.FAILED
    [drift] = job.error_detail["drifts"]
    assert (drift["kind"], drift["field"], drift["xero"]) == (
        "journal",
        "existence",
        "not found, voided or deleted",
    )
    assert drift["bms_url"].startswith("/admin/journals/")
    assert BackgroundJob.objects.filter(kind=JobKind.RECONCILE).count() == 1
