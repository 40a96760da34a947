"""Shared set-up for the payment and webhook tests: an invoice that exists in BMS and in the
sandbox's Xero, linked as the invoice push would link it; and a urlconf with the webhook route
(until xero_integration/urls.py carries it)."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.urls import include, path
from xero_python.accounting import Contact, Invoices, LineAmountTypes, LineItem
from xero_python.accounting import Invoice as SdkInvoice

from admin_jobs.models import BackgroundJob
from admin_jobs.services import job_run
from billing.models import Entity, Invoice
from billing.services import LineInput, invoice_create, invoice_release
from bms import clock
from tests.billing.factories import AccountFactory, CustomerFactory, TaxRateFactory
from xero_integration.models import XeroRecordLink
from xero_integration.webhooks import xero_webhook

ISSUE = date(2026, 11, 2)
DUE = date(2026, 11, 30)

urlpatterns = [
    path("xero/webhooks/", xero_webhook, name="xero_webhooks"),
    path("", include("bms.urls")),
]


def bms_invoice(entity: Entity, *, unit_price: Decimal = Decimal("100.00")) -> Invoice:
    """A released BMS invoice of unit_price + 15% GST."""
    customer = CustomerFactory(entity=entity)
    account = AccountFactory(entity=entity, code="200")
    tax = TaxRateFactory(entity=entity, name="15% GST on Income", rate=Decimal("15"))
    invoice = invoice_create(
        entity=entity,
        customer=customer,
        issue_date=ISSUE,
        due_date=DUE,
        lines=[
            LineInput(
                description="Flat white beans", quantity=Decimal("1"), unit_price=unit_price,
                account_id=account.pk, tax_rate_id=tax.pk,
            )
        ],
    )  # fmt: skip
    return invoice_release(invoice=invoice)


def xero_invoice(xero_env: Any, invoice: Invoice, *, tenant_id: str | None = None) -> str:
    """The same invoice created in the sandbox as a Xero user (or the invoice push) would;
    returns its InvoiceID."""
    tenant = tenant_id or xero_env.nz_tenant_id
    contact_id = xero_env.create_contact_in_xero(invoice.customer.name, tenant)
    line = invoice.lines.get()
    sdk = xero_env.sandbox.client()
    created = sdk.accounting.create_invoices(
        tenant,
        Invoices(
            invoices=[
                SdkInvoice(
                    type="ACCREC", contact=Contact(contact_id=contact_id),
                    invoice_number=invoice.number, date=ISSUE, due_date=DUE,
                    line_amount_types=LineAmountTypes.EXCLUSIVE, status="AUTHORISED",
                    line_items=[
                        LineItem(
                            description=line.description, quantity=line.quantity,
                            unit_amount=line.unit_price, account_code="200", tax_type="OUTPUT2",
                        )
                    ],
                )
            ]
        ),
    ).invoices[0]  # fmt: skip
    assert created.total == invoice.total, (created.total, invoice.total)
    return str(created.invoice_id)


def invoice_link(entity: Entity, invoice: Invoice, xero_id: str, tenant_id: str) -> XeroRecordLink:
    return XeroRecordLink.objects.create(
        entity=entity,
        tenant_id=tenant_id,
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id=invoice.pk,
        xero_id=xero_id,
        xero_number=invoice.number,
        last_pushed_at=clock.now(),
    )


def synced_invoice(
    xero_env: Any, entity: Entity, *, unit_price: Decimal = Decimal("100.00")
) -> tuple[Invoice, str]:
    """A released BMS invoice, the same invoice in Xero, and the link between them."""
    invoice = bms_invoice(entity, unit_price=unit_price)
    xero_id = xero_invoice(xero_env, invoice)
    invoice_link(entity, invoice, xero_id, xero_env.nz_tenant_id)
    return invoice, xero_id


def run(job: BackgroundJob) -> BackgroundJob:
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def calls(xero_env: Any, since: int, method: str, collection: str) -> list[dict[str, Any]]:
    return [
        e
        for e in xero_env.sandbox.requests_log(since)
        if e["method"] == method and e["path"].endswith(f"/{collection}")
    ]
