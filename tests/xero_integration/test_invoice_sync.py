"""Invoice and credit note pushes against the sandbox over real HTTP."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import AccountType, Invoice, LineAmountType
from billing.services import (
    LineInput,
    credit_note_allocate,
    credit_note_create,
    credit_note_release,
    invoice_void,
)
from tests.billing.factories import (
    AccountFactory,
    ProductFactory,
)
from xero_integration.invoice_sync import (
    credit_note_push_enqueue,
    document_prepush_problems,
    invoice_push_enqueue,
)
from xero_integration.models import XeroConnection, XeroRecordLink, XeroRequest

pytestmark = pytest.mark.django_db


def _run_all() -> None:
    for _ in range(30):
        due = list(BackgroundJob.objects.filter(state=JobState.QUEUED).values_list("pk", flat=True))
        if not due:
            return
        for job_id in due:
            job_run(job_id=job_id)


def _calls(xero_env, since, path):
    return [e for e in xero_env.sandbox.requests_log(since) if e["path"].endswith(path)]


def _push(invoice):
    job = invoice_push_enqueue(invoice=invoice)
    _run_all()
    job.refresh_from_db()
    return job


def test_a_released_invoice_for_a_never_synced_customer_pushes_the_contact_first(world):
    invoice = world.invoice(reference="PO 77")
    job = invoice_push_enqueue(invoice=invoice)
    contact_job = job.depends_on
    assert contact_job.kind == JobKind.PUSH_CONTACT
    assert job.state == JobState.WAITING
    _run_all()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    xero_invoice = world.xero_invoice("NZ-INV-00001")
    contact_link = XeroRecordLink.objects.get(object_id=world.customer.pk,
                                              content_type__model="customer")  # fmt: skip
    assert xero_invoice["ContactID"] == contact_link.xero_id
    assert xero_invoice["Status"] == "AUTHORISED"
    assert xero_invoice["Reference"] == "PO 77"
    assert Decimal(str(xero_invoice["Total"])) == invoice.total == Decimal("56.35")


@pytest.mark.parametrize(
    ("amount_type", "lines"),
    [
        (LineAmountType.INCLUSIVE, [("3", "11.50", "0"), ("1", "19.99", "0")]),
        (LineAmountType.EXCLUSIVE, [("7", "1.2345", "12.5"), ("3", "25.43", "0")]),
        (
            LineAmountType.EXCLUSIVE,
            [(str(n % 5 + 1), f"{n}.3333", str(n % 3 * 5)) for n in range(1, 41)],
        ),
        (LineAmountType.NOTAX, [("2", "9.995", "0")]),
    ],
)
def test_xero_totals_equal_bms_totals_to_the_cent(world, amount_type, lines):
    invoice = world.invoice(
        *[LineInput(description=f"Line {n}", quantity=Decimal(q), unit_price=Decimal(p),
                    discount_rate=Decimal(d)) for n, (q, p, d) in enumerate(lines)],
        line_amount_type=amount_type,
    )  # fmt: skip
    job = _push(invoice)
    assert job.state == JobState.SUCCEEDED, job.error_message
    xero_invoice = world.xero_invoice(invoice.number)
    assert Decimal(str(xero_invoice["Total"])) == invoice.total
    assert Decimal(str(xero_invoice["TotalTax"])) == invoice.total_tax
    assert Decimal(str(xero_invoice["SubTotal"])) == invoice.subtotal


def test_an_account_missing_in_xero_fails_before_anything_is_sent(world):
    consulting = AccountFactory(entity=world.entity, code="4100", name="Consulting",
                                type=AccountType.REVENUE)  # fmt: skip
    invoice = world.invoice(LineInput(description="Advice", unit_price=Decimal("100"),
                                      account_id=consulting.pk))  # fmt: skip
    start = world.xero_env.sandbox.last_seq()
    job = _push(invoice)
    assert job.state == JobState.FAILED
    assert job.error_message == (
        "Account code 4100 does not exist in Xero's chart of accounts — map it in Admin → Accounts."
    )
    assert _calls(world.xero_env, start, "/Invoices") == []


def test_an_unmapped_tax_rate_and_the_lock_date_are_explained(world):
    world.gst.xero_tax_type = ""
    world.gst.save()
    XeroConnection.objects.update(period_lock_date=date(2026, 11, 30))
    invoice = world.invoice()
    assert document_prepush_problems(document=invoice) == [
        "Tax rate “15% GST on Income” is not mapped to a Xero tax type — map it in Admin → "
        "Accounts.",
        "The date 2026-11-20 is on or before Xero's period lock date 2026-11-30: change the "
        "date, or ask your accountant to move the lock date in Xero.",
    ]


def test_a_batch_with_one_invalid_invoice_keeps_the_valid_ones(world):
    world.invoice()
    _run_all()  # the customer's contact is in Xero now
    # An account Xero has but that cannot take sales (a bank account): only Xero knows.
    bank = AccountFactory(entity=world.entity, code="090", name="Bank", type=AccountType.BANK)
    good = [world.invoice() for _ in range(3)]
    bad = world.invoice(LineInput(description="Wrong account", unit_price=Decimal("5"),
                                  account_id=bank.pk))  # fmt: skip
    jobs = [
        BackgroundJob.objects.get(kind=JobKind.PUSH_INVOICE, target_object_id=i.pk)
        for i in [*good, bad]
    ]
    start = world.xero_env.sandbox.last_seq()
    _run_all()
    states = [BackgroundJob.objects.get(pk=j.pk).state for j in jobs]
    assert states == [JobState.SUCCEEDED] * 3 + [JobState.FAILED]
    failed = BackgroundJob.objects.get(pk=jobs[-1].pk)
    assert failed.error_message.startswith(f"Xero refused invoice {bad.number}: Account code '090'")
    assert len([c for c in _calls(world.xero_env, start, "/Invoices") if c["method"] == "PUT"]) == 1
    assert bad.number not in [i["InvoiceNumber"] for i in world.xero_invoices()]


def test_a_lost_reply_retried_after_ten_minutes_creates_no_duplicate(world):
    invoice = world.invoice()
    job_run(job_id=invoice_push_enqueue(invoice=invoice).depends_on_id)
    world.xero_env.sandbox.set_fault("commit_then_drop", "PUT /Invoices", count=1)
    job = invoice_push_enqueue(invoice=invoice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert [i["InvoiceNumber"] for i in world.xero_invoices()] == [invoice.number]
    world.xero_env.advance(10 * 60)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert [i["InvoiceNumber"] for i in world.xero_invoices()] == [invoice.number]
    link = XeroRecordLink.objects.get(
        content_type=ContentType.objects.get_for_model(Invoice), object_id=invoice.pk
    )
    assert link.xero_id == world.xero_invoice(invoice.number)["InvoiceID"]


def test_a_lost_reply_retried_within_the_window_replays_the_same_request(world):
    invoice = world.invoice()
    job_run(job_id=invoice_push_enqueue(invoice=invoice).depends_on_id)
    world.xero_env.sandbox.set_fault("commit_then_drop", "PUT /Invoices", count=1)
    job = invoice_push_enqueue(invoice=invoice)
    job_run(job_id=job.pk)
    world.xero_env.advance(60)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    puts = [c for c in _calls(world.xero_env, 0, "/Invoices") if c["method"] == "PUT"]
    assert len(puts) == 2 and puts[0]["idempotency_key"] == puts[1]["idempotency_key"]
    assert len(world.xero_invoices()) == 1


def test_voiding_a_pushed_unpaid_invoice_voids_it_in_xero(world):
    invoice = world.invoice()
    assert _push(invoice).state == JobState.SUCCEEDED
    invoice = invoice_void(invoice=invoice)
    job = _push(invoice)
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert world.xero_invoice(invoice.number)["Status"] == "VOIDED"


def test_voiding_an_invoice_paid_in_xero_is_refused_with_the_reason(world):
    invoice = world.invoice()
    _push(invoice)
    xero_id = world.xero_invoice(invoice.number)["InvoiceID"]
    world.xero_env.sandbox.apply_payment(world.xero_env.nz_tenant_id, invoice_id=xero_id,
                                         amount="10.00")  # fmt: skip
    invoice = invoice_void(invoice=invoice)  # BMS has not pulled the payment yet
    job = _push(invoice)
    assert job.state == JobState.FAILED
    assert "cannot be edited as it has a payment or credit note allocated" in job.error_message
    assert world.xero_invoice(invoice.number)["Status"] == "AUTHORISED"


def test_item_descriptions_follow_the_entity_setting(world):
    product = ProductFactory(entity=world.entity, name="Single Origin 1kg",
                             revenue_account=world.sales, tax_rate=world.gst)  # fmt: skip
    world.entity.sync_item_descriptions = False
    world.entity.save()
    invoice = world.invoice(LineInput(product_id=product.pk, description="Special roast for Sam"),
                            LineInput(description="Delivery", unit_price=Decimal("5")))  # fmt: skip
    _push(invoice)
    lines = world.xero_invoice(invoice.number)["LineItems"]
    assert [line["Description"] for line in lines] == ["Single Origin 1kg", "Delivery"]


def test_a_credit_note_is_pushed_after_its_invoice_with_its_allocation(world):
    invoice = world.invoice()
    note = credit_note_release(credit_note=credit_note_create(
        entity=world.entity, customer=world.customer, issue_date=date(2026, 11, 21),
        lines=[LineInput(description="Damaged bag", quantity=Decimal("1"), unit_price=Decimal("20"),
                         discount_rate=Decimal("10"), account_id=world.sales.pk,
                         tax_rate_id=world.gst.pk)],
    ))  # fmt: skip
    credit_note_allocate(credit_note=note, invoice=invoice, amount=Decimal("10.00"),
                         date=date(2026, 11, 21))  # fmt: skip
    job = credit_note_push_enqueue(credit_note=note)
    _run_all()
    # If the credit note ran before its invoice, its allocation waited and is retried later.
    world.xero_env.advance(10 * 60)
    _run_all()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    org = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)
    [xero_note] = list(org["credit_notes"].values())
    assert xero_note["Type"] == "ACCRECCREDIT"
    assert Decimal(str(xero_note["Total"])) == note.total == Decimal("20.70")
    assert Decimal(str(world.xero_invoice(invoice.number)["AmountCredited"])) == Decimal("10.00")


def _statements_to_push(world, count):
    invoices = [world.invoice() for _ in range(count)]
    jobs = [BackgroundJob.objects.get(kind=JobKind.PUSH_INVOICE, target_object_id=i.pk)
            for i in invoices]  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        job_run(job_id=jobs[0].pk)
    assert [BackgroundJob.objects.get(pk=j.pk).state for j in jobs] == [JobState.SUCCEEDED] * count
    links = XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(Invoice),
        object_id__in=[i.pk for i in invoices],
    )
    by_number = {i["InvoiceNumber"]: i["InvoiceID"] for i in world.xero_invoices()}
    assert {link.xero_number: link.xero_id for link in links} == {
        i.number: by_number[i.number] for i in invoices
    }
    return len(queries)


def test_a_batch_of_40_invoices_takes_as_many_statements_as_a_batch_of_3(world):
    world.invoice()
    _run_all()  # the customer's contact is in Xero now
    assert _statements_to_push(world, 3) == _statements_to_push(world, 40)


def test_a_push_the_rate_limiter_refuses_stores_and_sends_nothing(world, settings):
    world.invoice()
    _run_all()  # one call: the contact push
    settings.XERO_RATE_LIMIT_PER_MINUTE = 2
    world.invoice()
    _run_all()  # the second call of the minute
    stored = XeroRequest.objects.count()
    start = world.xero_env.sandbox.last_seq()
    invoice = world.invoice()
    job = BackgroundJob.objects.get(kind=JobKind.PUSH_INVOICE, target_object_id=invoice.pk)

    job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == JobState.WAITING
    assert job.wait_reason == (
        "BMS is pacing calls to this Xero organisation (minute limit); it carries on by itself."
    )
    assert XeroRequest.objects.count() == stored
    assert world.xero_env.sandbox.requests_log(start) == []
