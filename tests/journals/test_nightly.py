"""The nightly cost-of-sales journals, end to end against the Xero sandbox over HTTP."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from admin_jobs.models import BackgroundJob, JobKind, JobState
from billing.services import invoice_void
from journals.models import CostOfSalesJournal, JournalStatus
from journals.services import cost_of_sales_journals_run
from journals.tasks import cost_of_sales_journals_run_task
from tests.journals.conftest import (
    LONDON,
    at,
    move_to,
    run_journal_jobs,
    xero_journals,
    xero_lines,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.redis]

DAY = timedelta(days=1)


def _journals(org, journal_date=None):
    journals = CostOfSalesJournal.objects.filter(entity=org.entity)
    if journal_date is not None:
        journals = journals.filter(journal_date=journal_date)
    return list(journals.order_by("journal_date", "sequence"))


def _manual_journal_requests(xero_env, since):
    return [e for e in xero_env.sandbox.requests_log(since) if "/ManualJournals" in e["path"]]


def test_each_entity_is_posted_on_its_own_local_date(kiwi, kiwi_uk, xero_env, d1):
    d0, d2 = d1 - DAY, d1 + DAY
    move_to(xero_env, at(d1, 0, 30))  # 00:30 in Auckland: still the day before in UTC
    kiwi.release_invoice("2")  # 8.00 at cost
    move_to(xero_env, at(d1, 23, 30))  # 23:30 in Auckland
    kiwi.release_invoice("3")  # 12.00
    move_to(xero_env, at(d2, 0, 30))  # the next local day
    kiwi.release_invoice("1")
    move_to(xero_env, at(d1, 23, 30, tz=LONDON))  # 23:30 in London: already d2 in Auckland
    kiwi_uk.release_invoice("5")  # 20.00

    # 00:30 in London: Auckland's d1 is due; London's d1 is not (its journal hour is 01:00).
    move_to(xero_env, at(d2, 0, 30, tz=LONDON))
    cost_of_sales_journals_run()
    run_journal_jobs()
    [nz_d1] = _journals(kiwi)
    assert (nz_d1.journal_date, nz_d1.status, nz_d1.total_debit) == (
        d1,
        JournalStatus.POSTED,
        Decimal("20.00"),
    )
    # London was connected at 11:00 on d0 local: that day is recorded as nothing to post.
    [uk_d0] = _journals(kiwi_uk)
    assert (uk_d0.journal_date, uk_d0.status) == (d0, JournalStatus.NOTHING)
    assert not BackgroundJob.objects.filter(
        kind=JobKind.COST_OF_SALES_JOURNAL, target_object_id=uk_d0.pk
    ).exists()

    move_to(xero_env, at(d2, 1, 30, tz=LONDON))
    cost_of_sales_journals_run()
    run_journal_jobs()
    uk_d1 = _journals(kiwi_uk, d1)[0]
    assert (uk_d1.status, uk_d1.total_debit) == (JournalStatus.POSTED, Decimal("20.00"))
    assert _journals(kiwi, d2) == []  # Auckland's d2 is not due until 01:00 on d3

    [nz_xero] = xero_journals(xero_env, kiwi.tenant_id)
    assert str(nz_xero["Date"])[:10] == d1.isoformat()
    assert nz_xero["Narration"] == (
        f"Cost of sales {d1.isoformat()} — Kiwi Coffee Roasters Ltd [bms-journal:{nz_d1.pk}]"
    )
    assert xero_lines(nz_xero) == {"310": Decimal("20.00"), "640": Decimal("-20.00")}
    assert nz_d1.xero_journal_id == nz_xero["ManualJournalID"]
    [uk_xero] = xero_journals(xero_env, kiwi_uk.tenant_id)
    assert str(uk_xero["Date"])[:10] == d1.isoformat()
    assert xero_lines(uk_xero) == {"310": Decimal("20.00"), "640": Decimal("-20.00")}
    job = BackgroundJob.objects.get(target_object_id=nz_d1.pk, kind=JobKind.COST_OF_SALES_JOURNAL)
    assert job.state == JobState.SUCCEEDED
    assert job.external_url == f"{xero_env.sandbox.url}/__sandbox__/ui/{kiwi.tenant_id}/"


def test_missed_nights_are_caught_up_in_order_and_a_rerun_posts_nothing(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 12))
    kiwi.release_invoice("1")
    move_to(xero_env, at(d1 + DAY, 1, 5))
    cost_of_sales_journals_run()
    run_journal_jobs()
    for offset, quantity in ((1, "2"), (2, "3"), (3, "4")):
        move_to(xero_env, at(d1 + offset * DAY, 12))
        kiwi.release_invoice(quantity)
    # The worker was down for the next three nights.
    move_to(xero_env, at(d1 + 4 * DAY, 1, 5))
    cost_of_sales_journals_run()
    run_journal_jobs()

    journals = _journals(kiwi)
    assert [(j.journal_date, j.status, j.total_debit) for j in journals] == [
        (d1, JournalStatus.POSTED, Decimal("4.00")),
        (d1 + DAY, JournalStatus.POSTED, Decimal("8.00")),
        (d1 + 2 * DAY, JournalStatus.POSTED, Decimal("12.00")),
        (d1 + 3 * DAY, JournalStatus.POSTED, Decimal("16.00")),
    ]
    # Created in Xero oldest first.
    assert [str(j["Date"])[:10] for j in xero_journals(xero_env, kiwi.tenant_id)] == [
        (d1 + n * DAY).isoformat() for n in range(4)
    ]

    since = xero_env.sandbox.last_seq()
    jobs_before = BackgroundJob.objects.filter(kind=JobKind.COST_OF_SALES_JOURNAL).count()
    cost_of_sales_journals_run()
    move_to(xero_env, at(d1 + 4 * DAY, 3))
    cost_of_sales_journals_run()
    call_command("journals_post", "--entity", "KIWI", "--date", (d1 + DAY).isoformat(), "--wait")
    run_journal_jobs()
    assert BackgroundJob.objects.filter(kind=JobKind.COST_OF_SALES_JOURNAL).count() == jobs_before
    assert _manual_journal_requests(xero_env, since) == []
    assert len(xero_journals(xero_env, kiwi.tenant_id)) == 4
    assert CostOfSalesJournal.objects.count() == 4


def test_the_hourly_task_skips_a_disconnected_entity_and_catches_up_after_reconnecting(
    kiwi, xero_env, d1, admin_client
):
    kiwi.connection.status = "disconnected"
    kiwi.connection.save()
    move_to(xero_env, at(d1, 12))
    kiwi.release_invoice("1")
    move_to(xero_env, at(d1 + DAY, 12))
    kiwi.release_invoice("2")
    move_to(xero_env, at(d1 + 2 * DAY, 1, 5))
    cost_of_sales_journals_run_task()
    assert not CostOfSalesJournal.objects.exists()

    kiwi.connection.status = "connected"
    kiwi.connection.save()
    cost_of_sales_journals_run_task()
    run_journal_jobs()
    assert [(j.journal_date, j.status) for j in _journals(kiwi)] == [
        (d1, JournalStatus.POSTED),
        (d1 + DAY, JournalStatus.POSTED),
    ]


def test_a_credit_note_after_the_days_journal_was_posted_is_posted_as_an_adjustment(
    kiwi, xero_env, d1
):
    move_to(xero_env, at(d1, 9))
    kiwi.release_invoice("5")  # 20.00
    move_to(xero_env, at(d1, 12))
    call_command("journals_post", "--entity", "KIWI", "--date", d1.isoformat(), "--wait")
    [original] = _journals(kiwi)
    assert (original.status, original.total_debit) == (JournalStatus.POSTED, Decimal("20.00"))

    move_to(xero_env, at(d1, 15))
    kiwi.release_credit_note("2")  # 8.00 back into stock, later the same day
    move_to(xero_env, at(d1 + DAY, 1, 30))
    cost_of_sales_journals_run()
    run_journal_jobs()

    original_again, adjustment = _journals(kiwi, d1)
    assert original_again.xero_journal_id == original.xero_journal_id  # never rewritten
    assert original_again.total_debit == Decimal("20.00")
    assert (adjustment.sequence, adjustment.status, adjustment.total_debit) == (
        1,
        JournalStatus.POSTED,
        Decimal("8.00"),
    )
    first, second = xero_journals(xero_env, kiwi.tenant_id)
    assert xero_lines(first) == {"310": Decimal("20.00"), "640": Decimal("-20.00")}
    assert xero_lines(second) == {"310": Decimal("-8.00"), "640": Decimal("8.00")}
    assert str(second["Date"])[:10] == d1.isoformat()
    assert second["Narration"].startswith(f"Cost of sales adjustment 1 {d1.isoformat()}")
    assert f"[bms-journal:{adjustment.pk}]" in second["Narration"]


def test_voiding_an_invoice_after_its_day_was_posted_reverses_it_on_that_day(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 10))
    voided = kiwi.release_invoice("5")  # 20.00
    kiwi.release_invoice("1")  # 4.00
    move_to(xero_env, at(d1 + DAY, 2))
    cost_of_sales_journals_run()
    run_journal_jobs()
    move_to(xero_env, at(d1 + DAY, 10))
    invoice_void(invoice=voided)
    move_to(xero_env, at(d1 + 2 * DAY, 2))
    cost_of_sales_journals_run()
    run_journal_jobs()

    original, adjustment = _journals(kiwi, d1)
    assert (original.status, original.total_debit) == (JournalStatus.POSTED, Decimal("24.00"))
    assert (adjustment.status, adjustment.total_debit) == (JournalStatus.POSTED, Decimal("20.00"))
    assert {line.account_code: line.amount for line in adjustment.lines.all()} == {
        "310": Decimal("-20.00"),
        "640": Decimal("20.00"),
    }
    [nothing] = _journals(kiwi, d1 + DAY)
    assert nothing.status == JournalStatus.NOTHING


def test_a_reply_lost_after_xero_created_the_journal_is_adopted_not_duplicated(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("5")
    move_to(xero_env, at(d1 + DAY, 2))
    cost_of_sales_journals_run()
    since = xero_env.sandbox.last_seq()
    xero_env.sandbox.set_fault("commit_then_drop", "PUT /ManualJournals")

    [job] = run_journal_jobs()
    assert job.state == JobState.QUEUED  # a transient failure: retried by the engine
    [journal] = _journals(kiwi)
    assert journal.status == JournalStatus.STARTED
    assert len(xero_journals(xero_env, kiwi.tenant_id)) == 1  # Xero did create it

    xero_env.advance(600)  # past Xero's 6-minute idempotency window
    [job] = run_journal_jobs()
    assert job.state == JobState.SUCCEEDED
    journal.refresh_from_db()
    [in_xero] = xero_journals(xero_env, kiwi.tenant_id)
    assert (journal.status, journal.adopted, journal.xero_journal_id) == (
        JournalStatus.POSTED,
        True,
        in_xero["ManualJournalID"],
    )
    requests = _manual_journal_requests(xero_env, since)
    assert [e["method"] for e in requests] == ["PUT", "GET"]
    assert "Narration.Contains" in requests[1]["query"] or "Narration" in requests[1]["query"]


def test_a_failed_reply_within_the_window_is_looked_up_then_sent_with_a_new_key(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("5")
    move_to(xero_env, at(d1 + DAY, 2))
    cost_of_sales_journals_run()
    since = xero_env.sandbox.last_seq()
    xero_env.sandbox.set_fault("error", "PUT /ManualJournals", status=503)
    run_journal_jobs()
    xero_env.advance(60)
    [job] = run_journal_jobs()
    assert job.state == JobState.SUCCEEDED
    assert len(xero_journals(xero_env, kiwi.tenant_id)) == 1
    puts = [e for e in _manual_journal_requests(xero_env, since) if e["method"] == "PUT"]
    # Xero would replay the cached 503 for the first key, so the second attempt uses a new one.
    assert [e["idempotency_key"] for e in puts] == [
        f"cos-journal:{job.target_object_id}:1",
        f"cos-journal:{job.target_object_id}:2",
    ]
