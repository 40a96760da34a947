"""Payments made in Xero, pulled into BMS, against the sandbox over real HTTP."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from admin_jobs.errors import PermanentJobError
from admin_jobs.models import BackgroundJob, JobKind, JobState, JobTrigger
from billing.models import Invoice, Payment, PaymentSource, PaymentStatus
from tests.billing.factories import AdminUserFactory, EntityFactory
from tests.xero_integration.factories import XeroConnectionFactory, XeroEntityLinkFactory
from tests.xero_integration.payments_support import (
    bms_invoice,
    calls,
    run,
    synced_invoice,
    xero_invoice,
)
from xero_integration import client as xero_client
from xero_integration.management.commands import xero_pull_payments
from xero_integration.models import ConnectionStatus, XeroConnection, XeroRecordLink
from xero_integration.payment_sync import (
    connections_due_for_payments_pull,
    entity_in_business_hours,
    payments_pull_enqueue,
    payments_pull_schedule,
    payments_pull_since,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", code="NZ", base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity


def _pull() -> BackgroundJob:
    job = payments_pull_enqueue(connection=XeroConnection.objects.get())
    assert job is not None
    return run(job)


def _payments_gets(xero_env, since):
    return calls(xero_env, since, "GET", "Payments")


@pytest.mark.parametrize("invoice_update_on_payment", [True, False])
def test_a_payment_applied_in_xero_is_pulled_by_the_poll(
    entity, xero_env, invoice_update_on_payment
):
    xero_env.sandbox.set_settings(invoice_update_on_payment=invoice_update_on_payment)
    invoice, xero_id = synced_invoice(xero_env, entity)
    paid = xero_env.sandbox.apply_payment(
        xero_env.nz_tenant_id, invoice_id=xero_id, amount="40.00", reference="DD 1234"
    )
    start = xero_env.sandbox.last_seq()

    job = _pull()

    assert job.state == JobState.SUCCEEDED, job.error_message
    assert job.result["created"] == 1
    [payment] = Payment.objects.all()
    assert payment.xero_payment_id == paid["PaymentID"]
    assert payment.source == PaymentSource.XERO
    assert payment.amount == Decimal("40.00")
    assert payment.reference == "DD 1234"
    assert payment.is_deleted is False
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("40.00"), Decimal("75.00"))
    assert invoice.payment_status == PaymentStatus.PART_PAID
    in_xero = xero_env.sandbox.org(xero_env.nz_tenant_id)["invoices"][xero_id]
    assert invoice.amount_due == in_xero["AmountDue"]
    assert XeroRecordLink.objects.get(object_id=invoice.pk).last_pulled_at is not None
    connection = XeroConnection.objects.get()
    assert connection.payments_pulled_at is not None
    assert connection.payments_high_water_mark is not None
    # The first pull of an organisation asks for everything: one page, one call.
    [call] = _payments_gets(xero_env, start)
    assert "page=1" in call["query"] and "pageSize=1000" in call["query"]


def test_the_rest_of_the_invoice_paid_in_xero_marks_it_paid(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="40.00")
    _pull()
    xero_env.advance(60)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="75.00")

    job = _pull()

    assert job.result["created"] == 1 and job.result["unchanged"] == 1
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("115.00"), Decimal("0.00"))
    assert invoice.payment_status == PaymentStatus.PAID
    assert Payment.objects.count() == 2


def test_a_payment_deleted_in_xero_is_reversed(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    first = xero_env.sandbox.apply_payment(
        xero_env.nz_tenant_id, invoice_id=xero_id, amount="40.00"
    )
    second = xero_env.sandbox.apply_payment(
        xero_env.nz_tenant_id, invoice_id=xero_id, amount="75.00"
    )
    _pull()
    invoice.refresh_from_db()
    assert invoice.payment_status == PaymentStatus.PAID

    xero_env.advance(60)
    xero_env.sandbox.delete_payment(xero_env.nz_tenant_id, second["PaymentID"])
    job = _pull()

    assert job.result["reversed"] == 1
    reversed_payment = Payment.objects.get(xero_payment_id=second["PaymentID"])
    assert reversed_payment.is_deleted is True  # kept, reversed, never forgotten
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("40.00"), Decimal("75.00"))
    assert invoice.payment_status == PaymentStatus.PART_PAID

    xero_env.advance(60)
    xero_env.sandbox.delete_payment(xero_env.nz_tenant_id, first["PaymentID"])
    _pull()
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("0.00"), Decimal("115.00"))
    assert invoice.payment_status == PaymentStatus.UNPAID
    assert Payment.objects.count() == 2


def test_payments_on_invoices_bms_does_not_know_are_counted_and_ignored(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    stranger = bms_invoice(entity)  # in Xero too, but never linked
    stranger_xero_id = xero_invoice(xero_env, stranger)
    xero_env.sandbox.apply_payment(
        xero_env.nz_tenant_id, invoice_id=stranger_xero_id, amount="10.00"
    )
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="10.00")

    job = _pull()

    assert job.result["ignored_unlinked"] == 1
    assert job.result["created"] == 1
    assert list(Payment.objects.values_list("invoice_id", flat=True)) == [invoice.pk]
    stranger.refresh_from_db()
    assert stranger.amount_paid == Decimal("0.00")


def _many_payments(xero_env, xero_id, count):
    for _ in range(count):
        xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="1.00")


def test_2500_payments_are_paged_and_stored_once_and_a_poll_with_nothing_new_costs_one_call(
    entity, xero_env
):
    invoice, xero_id = synced_invoice(xero_env, entity, unit_price=Decimal("3000.00"))
    _many_payments(xero_env, xero_id, 2500)
    xero_env.advance(10 * 60)  # the payments are settled well before the pull starts
    start = xero_env.sandbox.last_seq()

    job = _pull()

    assert job.state == JobState.SUCCEEDED, job.error_message
    gets = _payments_gets(xero_env, start)
    assert [f"page={n}&" in g["query"] for n, g in enumerate(gets, start=1)] == [True] * 3
    assert job.result["calls"] == 3 and job.result["created"] == 2500
    assert Payment.objects.count() == 2500
    assert Payment.objects.values("xero_payment_id").distinct().count() == 2500
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("2500.00")

    # The next poll, with nothing new: one call, nothing stored.
    start = xero_env.sandbox.last_seq()
    job = _pull()
    assert len(_payments_gets(xero_env, start)) == 1
    assert job.result["seen"] == 0
    assert Payment.objects.count() == 2500


def test_re_reading_the_overlap_stores_nothing_twice(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="10.00")
    _pull()
    xero_env.advance(60)  # inside the 5-minute overlap: the same payment is read again
    job = _pull()
    assert job.result == {**job.result, "seen": 1, "created": 0, "unchanged": 1}
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("10.00")


@pytest.mark.parametrize(
    ("fault", "state_after"),
    [
        ({"kind": "error", "status": 500}, JobState.QUEUED),  # transient: retried later
        ({"kind": "rate_limit", "retry_after": 60, "problem": "minute"}, JobState.WAITING),
    ],
    ids=["server-error", "rate-limited"],
)
def test_a_page_failing_midway_keeps_the_cursor_and_the_retry_stores_nothing_twice(
    entity, xero_env, monkeypatch, fault, state_after, redis_url
):
    invoice, xero_id = synced_invoice(xero_env, entity, unit_price=Decimal("2000.00"))
    _many_payments(xero_env, xero_id, 1500)
    real_get = xero_client.XeroClient.payments_get

    def second_page_fails_once(self, **kwargs):
        if kwargs.get("page") == 2 and not getattr(second_page_fails_once, "fired", False):
            second_page_fails_once.fired = True
            xero_env.sandbox.set_fault(route="GET /Payments", count=1, **fault)
        return real_get(self, **kwargs)

    monkeypatch.setattr(xero_client.XeroClient, "payments_get", second_page_fails_once)

    job = _pull()

    assert job.state == state_after
    assert Payment.objects.count() == 1000  # the first page committed
    connection = XeroConnection.objects.get()
    assert connection.payments_high_water_mark is None
    assert connection.payments_pulled_at is None

    xero_env.advance(120)
    # The shared limiter keeps Xero's pause in Redis on the real clock: let it pass too.
    limiter = redis.Redis.from_url(redis_url)
    for key in limiter.scan_iter("bms:xero-rl*:pause"):
        limiter.delete(key)
    start = xero_env.sandbox.last_seq()
    job = run(job)

    assert job.state == JobState.SUCCEEDED, job.error_message
    assert job.result["resumed_at_page"] == 2
    assert len(_payments_gets(xero_env, start)) == 1  # page 2 only
    assert Payment.objects.count() == 1500
    assert Payment.objects.values("xero_payment_id").distinct().count() == 1500
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("1500.00")
    connection.refresh_from_db()
    assert connection.payments_high_water_mark is not None

    # A fresh pull re-reads the overlap from page 1 and still stores nothing twice.
    job = _pull()
    assert job.result["created"] == 0
    assert Payment.objects.count() == 1500


def test_a_disconnected_organisation_waits_instead_of_failing(entity, xero_env):
    XeroConnection.objects.update(status=ConnectionStatus.NEEDS_REAUTH)
    job = _pull()
    assert job.state == JobState.WAITING
    assert "re-authorise" in job.wait_reason


# --- The schedule ----------------------------------------------------------------------------


def _nz(year, month, day, hour, minute=0):
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Pacific/Auckland"))


def test_business_hours_follow_the_entitys_days_hours_and_time_zone():
    entity = EntityFactory.build(
        timezone="Pacific/Auckland", business_hours_start=time(8), business_hours_end=time(18),
        business_days="12345",
    )  # fmt: skip
    assert entity_in_business_hours(entity=entity, at=_nz(2026, 11, 23, 9))  # Monday
    assert not entity_in_business_hours(entity=entity, at=_nz(2026, 11, 23, 7, 59))
    assert not entity_in_business_hours(entity=entity, at=_nz(2026, 11, 23, 18))
    assert not entity_in_business_hours(entity=entity, at=_nz(2026, 11, 22, 12))  # Sunday
    # 21:00 UTC on Sunday is 10:00 on Monday in Auckland.
    assert entity_in_business_hours(entity=entity, at=datetime(2026, 11, 22, 21, tzinfo=UTC))


def test_an_organisation_is_due_when_any_entity_is_in_hours_and_it_was_pulled_2_hours_ago():
    at = _nz(2026, 11, 23, 10)  # Monday 10:00 in Auckland
    connection = XeroConnectionFactory()
    XeroEntityLinkFactory(
        connection=connection,
        entity=EntityFactory(timezone="Europe/London"),  # Sunday night there
    )
    assert connections_due_for_payments_pull(at=at) == []
    XeroEntityLinkFactory(connection=connection, entity=EntityFactory(timezone="Pacific/Auckland"))
    assert connections_due_for_payments_pull(at=at) == [connection]  # never pulled

    XeroConnection.objects.update(payments_pulled_at=at - timedelta(hours=1))
    assert connections_due_for_payments_pull(at=at) == []
    # Pulled at 08:00:40 last time: due again at the 10:00 run, not at 11:00.
    XeroConnection.objects.update(
        payments_pulled_at=at - timedelta(hours=1, minutes=59, seconds=20)
    )
    assert connections_due_for_payments_pull(at=at) == [connection]
    XeroConnection.objects.update(status=ConnectionStatus.DISCONNECTED)
    assert connections_due_for_payments_pull(at=at) == []


def test_the_hourly_beat_queues_one_pull_per_due_organisation():
    connection = XeroConnectionFactory()
    always = {"business_hours_start": time(0), "business_hours_end": time(23, 59, 59),
              "business_days": "1234567"}  # fmt: skip
    XeroEntityLinkFactory(connection=connection, entity=EntityFactory(**always))
    XeroEntityLinkFactory(connection=connection, entity=EntityFactory(**always))
    closed = XeroConnectionFactory()
    XeroEntityLinkFactory(connection=closed, entity=EntityFactory(business_days=""))

    jobs = payments_pull_schedule()
    again = payments_pull_schedule()  # collapses into the unstarted job

    assert [j.pk for j in jobs] == [j.pk for j in again]
    [job] = BackgroundJob.objects.filter(kind=JobKind.PULL_PAYMENTS)
    assert job.triggered_by == JobTrigger.SCHEDULE
    assert job.target == connection
    assert job.dedupe_key == f"pull_payments:{connection.tenant_id}"


# --- The command -----------------------------------------------------------------------------


def _running_wait_for_jobs(monkeypatch):
    """No worker runs in tests: run the queued jobs when the command starts waiting."""
    real = xero_pull_payments.wait_for_jobs

    def wait(job_ids, **kwargs):
        for job_id in job_ids:
            run(BackgroundJob.objects.get(pk=job_id))
        return real(job_ids, **kwargs)

    monkeypatch.setattr(xero_pull_payments, "wait_for_jobs", wait)


def test_the_command_pulls_and_waits_with_a_summary(entity, xero_env, monkeypatch, capsys):
    invoice, xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="15.00")
    _running_wait_for_jobs(monkeypatch)

    call_command("xero_pull_payments", "--entity", "NZ", "--wait")

    out = capsys.readouterr().out
    assert "[##############################] 1/1" in out
    assert "1 pull(s): 1 new payment(s), 0 reversed" in out
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("15.00")


def test_the_command_exits_non_zero_when_a_pull_fails(entity, xero_env, monkeypatch):
    _running_wait_for_jobs(monkeypatch)

    def refuse(**kwargs):
        raise PermanentJobError("Xero said no.")

    monkeypatch.setattr("xero_integration.payment_jobs.payments_pull", refuse)
    with pytest.raises(CommandError, match=r"1 payments pull\(s\) failed"):
        call_command("xero_pull_payments", "--wait")


def test_the_command_refuses_unknown_and_unconnected_entities():
    with pytest.raises(CommandError, match="No entity is connected to Xero"):
        call_command("xero_pull_payments")
    with pytest.raises(CommandError, match="No entity with code NOPE."):
        call_command("xero_pull_payments", "--entity", "NOPE")
    EntityFactory(code="UK")
    with pytest.raises(CommandError, match="Not connected to Xero: UK."):
        call_command("xero_pull_payments", "--entity", "UK")
    assert not BackgroundJob.objects.exists()


def test_each_invoice_is_derived_from_its_own_payments_only(entity, xero_env):
    invoice, xero_id = synced_invoice(xero_env, entity)
    other, other_xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="5.00")
    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=other_xero_id, amount="7.00")
    _pull()
    assert Invoice.objects.get(pk=invoice.pk).amount_paid == Decimal("5.00")
    assert Invoice.objects.get(pk=other.pk).amount_paid == Decimal("7.00")


# --- The cursor ------------------------------------------------------------------------------


def test_the_next_pull_re_reads_only_what_may_have_been_committed_late():
    mark = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    overlap = timedelta(minutes=5)
    assert payments_pull_since(high_water_mark=None, last_pull_started_at=None) is None
    # Unknown start: the full overlap before the mark.
    assert payments_pull_since(high_water_mark=mark, last_pull_started_at=None) == mark - overlap
    # The last pull started right after the newest change: it may have missed late commits.
    started = mark + timedelta(seconds=20)
    assert payments_pull_since(high_water_mark=mark, last_pull_started_at=started) == (
        started - overlap
    )
    # It started long after the newest change: nothing can be missing at or before the mark.
    started = mark + timedelta(hours=2)
    assert payments_pull_since(high_water_mark=mark, last_pull_started_at=started) == mark
    # A clock behind Xero's never asks for less than the overlap before the mark.
    started = mark - timedelta(hours=1)
    assert payments_pull_since(high_water_mark=mark, last_pull_started_at=started) == (
        mark - overlap
    )


def test_the_command_names_an_organisation_that_needs_re_authorising(entity, xero_env):
    XeroConnection.objects.update(status=ConnectionStatus.NEEDS_REAUTH)
    with pytest.raises(CommandError, match="Not pulled, re-authorise first: "):
        call_command("xero_pull_payments", "--wait")
    assert not BackgroundJob.objects.filter(kind=JobKind.PULL_PAYMENTS).exists()
