"""Payments recorded in BMS, pushed to Xero once, against the sandbox over real HTTP."""

import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.db import transaction

from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobState, JobTrigger
from admin_jobs.services import (
    job_cancel,
    job_enqueue,
    job_retry,
    job_run,
)
from billing.models import Payment, PaymentMethod, PaymentSource
from billing.services import payment_record
from bms import clock
from tests.billing.factories import AdminUserFactory, EntityFactory, PaymentFactory
from tests.xero_integration.payments_support import (
    bms_invoice,
    calls,
    run,
    synced_invoice,
)
from xero_integration.models import PaymentAccountMapping, XeroConnection
from xero_integration.payment_sync import (
    invoice_link_get,
    payment_push_enqueue,
    payments_pull_enqueue,
)

pytestmark = pytest.mark.django_db

PAID_ON = date(2026, 11, 20)


@pytest.fixture
def entity(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", code="NZ", base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    PaymentAccountMapping.objects.create(
        entity=entity, method=PaymentMethod.CHEQUE, account_code="090"
    )
    return entity


def _record(invoice, amount="40.00", method=PaymentMethod.CHEQUE, reference="Chq 000123"):
    with transaction.atomic():
        payment = payment_record(
            invoice=invoice, amount=Decimal(amount), date=PAID_ON, reference=reference,
            method=method,
        )  # fmt: skip
        # The hook billing's caller adds: queue the push in the same transaction.
        job = payment_push_enqueue(payment=payment)
    return payment, job


def _xero_payments(xero_env):
    return list(xero_env.sandbox.org(xero_env.nz_tenant_id)["payments"].values())


def _puts(xero_env, since=0):
    """The payment creates: xero-python's create_payment is POST /Payments (one payment)."""
    return calls(xero_env, since, "POST", "Payments")


def test_a_payment_recorded_in_bms_is_pushed_once_into_the_mapped_bank_account(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    payment, job = _record(invoice)
    start = xero_env.sandbox.last_seq()

    job = run(job)

    assert job.state == JobState.SUCCEEDED, job.error_message
    [in_xero] = _xero_payments(xero_env)
    assert in_xero["InvoiceID"] == xero_id
    assert in_xero["Amount"] == Decimal("40.00")
    assert in_xero["Account"]["Code"] == "090"
    assert in_xero["Date"] == PAID_ON
    assert in_xero["Reference"] == f"Chq 000123 [BMS-P{payment.pk}]"
    payment.refresh_from_db()
    assert payment.xero_payment_id == in_xero["PaymentID"]
    assert job.result["payment_id"] == in_xero["PaymentID"]
    assert xero_id in job.external_url
    assert in_xero["PaymentID"] and len(_puts(xero_env, start)) == 1
    xero_inv = xero_env.sandbox.org(xero_env.nz_tenant_id)["invoices"][xero_id]
    assert xero_inv["AmountDue"] == Decimal("75.00")

    # Already in Xero: nothing more is queued, and a pull stores no second copy.
    assert payment_push_enqueue(payment=payment) is None
    pull = run(payments_pull_enqueue(connection=XeroConnection.objects.get()))
    assert pull.result["created"] == 0 and pull.result["unchanged"] == 1
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("40.00")


def test_running_the_push_again_sends_nothing(entity, xero_env):
    invoice, _ = synced_invoice(xero_env, entity)
    payment, job = _record(invoice)
    run(job)
    with transaction.atomic():
        again = job_enqueue(
            kind=JobKind.PUSH_PAYMENT, entity=entity, target=payment, description="again",
            direction=JobDirection.EXPORT, triggered_by=JobTrigger.USER,
        )  # fmt: skip
    start = xero_env.sandbox.last_seq()
    again = run(again)
    assert again.state == JobState.SUCCEEDED
    assert again.result["already_in_xero"] is True
    assert _puts(xero_env, start) == []
    assert len(_xero_payments(xero_env)) == 1


def test_a_dropped_reply_is_replayed_with_the_same_key_and_pays_once(entity, xero_env):
    invoice, _ = synced_invoice(xero_env, entity)
    payment, job = _record(invoice)
    xero_env.sandbox.set_fault("commit_then_drop", "POST /Payments", count=1)

    job = run(job)

    assert job.state == JobState.QUEUED  # the outcome is unknown: retried later
    assert len(_xero_payments(xero_env)) == 1  # Xero did apply it
    payment.refresh_from_db()
    assert payment.xero_payment_id is None
    xero_env.advance(90)  # inside Xero's idempotency window
    job = run(job)

    assert job.state == JobState.SUCCEEDED, job.error_message
    [in_xero] = _xero_payments(xero_env)
    payment.refresh_from_db()
    assert payment.xero_payment_id == in_xero["PaymentID"]
    keys = [e["idempotency_key"] for e in _puts(xero_env)]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_a_dropped_reply_retried_after_xeros_window_is_looked_up_not_paid_twice(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    payment, job = _record(invoice)
    xero_env.sandbox.set_fault("commit_then_drop", "POST /Payments", count=1)
    run(job)
    xero_env.advance(10 * 60)  # past Xero's 6-minute window: the key is forgotten
    start = xero_env.sandbox.last_seq()

    job = run(job)

    assert job.state == JobState.SUCCEEDED, job.error_message
    assert job.result["adopted"] is True
    [in_xero] = _xero_payments(xero_env)
    payment.refresh_from_db()
    assert payment.xero_payment_id == in_xero["PaymentID"]
    assert _puts(xero_env, start) == []
    [lookup] = calls(xero_env, start, "GET", "Payments")
    assert "BMS-P" in lookup["query"]
    assert xero_env.sandbox.org(xero_env.nz_tenant_id)["invoices"][xero_id]["AmountPaid"] == (
        Decimal("40.00")
    )


def test_a_pull_between_the_dropped_reply_and_the_retry_adopts_the_payment(entity, xero_env):
    invoice, _ = synced_invoice(xero_env, entity)
    payment, job = _record(invoice)
    xero_env.sandbox.set_fault("commit_then_drop", "POST /Payments", count=1)
    run(job)

    pull = run(payments_pull_enqueue(connection=XeroConnection.objects.get()))

    assert pull.result["adopted"] == 1 and pull.result["created"] == 0
    [in_xero] = _xero_payments(xero_env)
    payment.refresh_from_db()
    assert payment.xero_payment_id == in_xero["PaymentID"]
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("40.00")  # counted once
    xero_env.advance(90)
    start = xero_env.sandbox.last_seq()
    job = run(job)
    assert job.state == JobState.SUCCEEDED
    assert _puts(xero_env, start) == []
    assert len(_xero_payments(xero_env)) == 1


def test_a_payment_that_came_from_xero_is_never_pushed_back(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="40.00")
    run(payments_pull_enqueue(connection=XeroConnection.objects.get()))
    [pulled] = Payment.objects.all()
    assert pulled.source == PaymentSource.XERO

    assert payment_push_enqueue(payment=pulled) is None
    # Even a push job made some other way sends nothing.
    xero_only = PaymentFactory(
        invoice=invoice, source=PaymentSource.XERO, xero_payment_id=str(uuid.uuid4())
    )
    with transaction.atomic():
        job = job_enqueue(
            kind=JobKind.PUSH_PAYMENT, entity=entity, target=xero_only, description="forced",
            direction=JobDirection.EXPORT, triggered_by=JobTrigger.USER,
        )  # fmt: skip
    start = xero_env.sandbox.last_seq()
    job = run(job)
    assert job.state == JobState.SKIPPED
    assert job.skipped_reason == "This payment came from Xero; BMS never pushes it back."
    assert _puts(xero_env, start) == []
    assert len(_xero_payments(xero_env)) == 1


def test_a_method_without_a_bank_account_mapping_fails_with_the_fix(entity, xero_env):
    invoice, _ = synced_invoice(xero_env, entity)
    start = xero_env.sandbox.last_seq()
    payment, job = _record(invoice, method=PaymentMethod.BANK_TRANSFER)

    job = run(job)

    assert job.state == JobState.FAILED
    assert job.error_message.startswith(
        "Map the bank transfer payment method to a bank account in Admin → Accounts"
    )
    assert xero_env.sandbox.requests_log(start) == []  # nothing was sent
    payment.refresh_from_db()
    assert payment.xero_payment_id is None

    # Fixed by the admin, then Retry now: it goes through.
    PaymentAccountMapping.objects.create(entity=entity, method="transfer", account_code="090")
    job = run(job_retry(job=job, user=None))
    assert job.state == JobState.SUCCEEDED, job.error_message
    assert len(_xero_payments(xero_env)) == 1


def test_xeros_refusal_is_reported_with_its_message(entity, xero_env):
    PaymentAccountMapping.objects.filter(entity=entity).update(account_code="200")  # revenue
    invoice, _ = synced_invoice(xero_env, entity)
    _, job = _record(invoice)
    job = run(job)
    assert job.state == JobState.FAILED
    assert job.error_message.startswith("Xero refused the payment of 40.00 on invoice ")
    assert job.error_detail["xero_errors"]
    assert _xero_payments(xero_env) == []


def _run_due_jobs():
    """Play the worker: run due jobs (each once per round) until none is left."""
    for _ in range(10):
        due = list(
            BackgroundJob.objects.filter(state=JobState.QUEUED, not_before__lte=clock.now())
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not due:
            return
        for job_id in due:
            job_run(job_id=job_id)


def test_the_push_waits_for_the_invoice_push_when_the_invoice_is_not_in_xero_yet(entity, xero_env):
    invoice = bms_invoice(entity)  # releasing it queued its push (and its customer's)
    [invoice_job] = BackgroundJob.objects.filter(kind=JobKind.PUSH_INVOICE)
    payment, job = _record(invoice)
    assert job.depends_on_id == invoice_job.pk
    assert job.state == JobState.WAITING
    assert run(job).state == JobState.WAITING  # not claimable while it waits

    _run_due_jobs()  # the contact push, then the invoice push, then (woken) the payment push

    invoice_job.refresh_from_db()
    assert invoice_job.state == JobState.SUCCEEDED, invoice_job.error_message
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error_message
    [in_xero] = _xero_payments(xero_env)
    assert in_xero["InvoiceID"] == invoice_link_get(invoice=invoice).xero_id
    payment.refresh_from_db()
    assert payment.xero_payment_id == in_xero["PaymentID"]


def test_an_invoice_whose_push_was_cancelled_fails_the_payment_push_with_what_to_do(
    entity, xero_env
):
    invoice = bms_invoice(entity)
    for invoice_job in BackgroundJob.objects.filter(kind=JobKind.PUSH_INVOICE):
        job_cancel(job=invoice_job, user=None)
    payment, job = _record(invoice)
    assert job.depends_on_id is None
    job = run(job)
    assert job.state == JobState.FAILED
    assert job.error_message == (
        f"Invoice {invoice.number} is not in Xero yet: sync the invoice to Xero, then press "
        "Retry now on this payment."
    )


def test_nothing_is_queued_for_an_entity_that_does_not_sync_with_xero():
    other = EntityFactory()
    payment = PaymentFactory(invoice__entity=other)
    assert payment_push_enqueue(payment=payment) is None
    assert not BackgroundJob.objects.exists()
