"""The pre-push check refuses, with the fix and without calling Xero, what Xero would refuse."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from admin_jobs.models import JobState
from admin_jobs.services import job_retry
from billing.models import AccountType
from billing.services import payment_record
from bms import clock
from journals.models import CostOfSalesJournal, CostOfSalesJournalLine, JournalStatus
from journals.services import cost_of_sales_journal_post, cost_of_sales_journals_run
from tests.billing.factories import AccountFactory, ProductFactory
from tests.journals.conftest import at, move_to, run_journal_jobs
from xero_integration.models import XeroAccount

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.redis]

DAY = timedelta(days=1)


def _stock_product(org, code, name, account_type):
    stock = AccountFactory(entity=org.entity, code=code, name=name, type=account_type)
    return ProductFactory(entity=org.entity, inventory_account=stock, unit_cost=Decimal("4.00"))


def _post_and_run(org, xero_env, journal_date):
    since = xero_env.sandbox.last_seq()
    result = cost_of_sales_journal_post(entity=org.entity, journal_date=journal_date)
    [job] = run_journal_jobs()
    result.journal.refresh_from_db()
    xero_calls = [e for e in xero_env.sandbox.requests_log(since) if "/api.xro/" in e["path"]]
    return result.journal, job, xero_calls


@pytest.mark.parametrize(
    ("code", "name", "account_type", "reason"),
    [
        ("090", "Business Bank Account", AccountType.BANK, "is a bank account"),
        ("630", "Inventory", AccountType.INVENTORY, "tracked inventory (INVENTORY)"),
        ("610", "Accounts Receivable", AccountType.CURRENT, "is a Xero system account"),
        ("299", "Old Sales", AccountType.REVENUE, "is archived in Xero"),
        ("777", "Nowhere", AccountType.CURRENT, "does not exist in the Xero organisation"),
    ],
)
def test_an_account_xero_refuses_fails_the_job_with_the_fix_and_no_xero_call(
    kiwi, xero_env, d1, code, name, account_type, reason
):
    product = _stock_product(kiwi, code, name, account_type)
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2", product=product)
    journal, job, xero_calls = _post_and_run(kiwi, xero_env, d1)
    assert job.state == JobState.FAILED
    assert f"Account {code} {name if code != '777' else ''}".strip() in job.error_message
    assert reason in job.error_message
    assert "Billing → Products" in job.error_message  # the fix
    assert journal.status == JournalStatus.FAILED
    assert journal.last_error == job.error_message
    assert xero_calls == []


def test_an_unbalanced_journal_is_refused_without_calling_xero(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2")
    move_to(xero_env, at(d1, 12))
    result = cost_of_sales_journal_post(entity=kiwi.entity, journal_date=d1)
    CostOfSalesJournalLine.objects.filter(journal=result.journal, amount__lt=0).update(
        amount=F("amount") + Decimal("1.00")
    )
    since = xero_env.sandbox.last_seq()
    [job] = run_journal_jobs()
    assert job.state == JobState.FAILED
    assert "does not balance: debits 8.00 and credits 7.00 differ by 1.00" in job.error_message
    assert "Press Rebuild" in job.error_message
    assert [e for e in xero_env.sandbox.requests_log(since) if "/api.xro/" in e["path"]] == []


def test_a_chart_of_accounts_never_pulled_says_to_pull_it_first(kiwi, xero_env, d1):
    XeroAccount.objects.filter(connection=kiwi.connection).delete()
    kiwi.connection.accounts_pulled_at = None
    kiwi.connection.save()
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2")
    journal, job, xero_calls = _post_and_run(kiwi, xero_env, d1)
    assert job.state == JobState.FAILED
    assert "Pull the accounts in Admin → Accounts first" in job.error_message
    assert xero_calls == []


def test_an_entity_in_another_currency_than_its_organisation_is_refused(kiwi, xero_env, d1):
    kiwi.entity.base_currency = "AUD"
    kiwi.entity.save()
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2")
    journal, job, xero_calls = _post_and_run(kiwi, xero_env, d1)
    assert job.state == JobState.FAILED
    assert "keeps its costs in AUD" in job.error_message
    assert "reports in NZD" in job.error_message
    assert "currency-rate policy" in job.error_message
    assert xero_calls == []


def test_a_product_with_only_one_of_its_two_accounts_fails_the_build(kiwi, xero_env, d1):
    product = ProductFactory(entity=kiwi.entity, code="HALF", inventory_account=None)
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2", product=product)
    journal, job, xero_calls = _post_and_run(kiwi, xero_env, d1)
    assert job.state == JobState.FAILED
    assert "Product(s) HALF have a cost-of-sales account or a stock account" in job.error_message
    assert xero_calls == []


def test_the_command_exits_non_zero_when_a_journal_fails(kiwi, xero_env, d1, capsys):
    product = _stock_product(kiwi, "090", "Business Bank Account", AccountType.BANK)
    move_to(xero_env, at(d1, 10))
    kiwi.release_invoice("2", product=product)
    with pytest.raises(CommandError) as raised:
        call_command("journals_post", "--entity", "KIWI", "--date", d1.isoformat(), "--wait")
    assert raised.value.returncode == 1
    out = capsys.readouterr().out
    assert "Summary:" in out
    assert "is a bank account" in out
    assert CostOfSalesJournal.objects.get().status == JournalStatus.FAILED


def test_a_date_that_has_not_started_is_refused(kiwi, xero_env, d1):
    with pytest.raises(CommandError) as raised:
        call_command("journals_post", "--entity", "KIWI", "--date", (d1 + DAY).isoformat())
    assert raised.value.returncode == 1
    assert not CostOfSalesJournal.objects.exists()


def test_a_failed_night_is_reported_once_and_posts_after_the_fix_and_retry(kiwi, xero_env, d1):
    product = _stock_product(kiwi, "090", "Business Bank Account", AccountType.BANK)
    move_to(xero_env, at(d1, 10))
    invoice = kiwi.release_invoice("2", product=product)
    move_to(xero_env, at(d1 + DAY, 1, 5))
    cost_of_sales_journals_run()
    [failed] = run_journal_jobs()
    assert failed.state == JobState.FAILED

    # The day's invoices change (a payment) and it is rebuilt, still failing; the hourly runs do
    # not pile up a failed job each.
    payment_record(invoice=invoice, amount=Decimal("1.00"), date=d1 + DAY)
    move_to(xero_env, at(d1 + DAY, 2, 5))
    cost_of_sales_journals_run()
    assert run_journal_jobs() == []
    assert clock.now() - CostOfSalesJournal.objects.get().checked_at < timedelta(seconds=30)

    # The fix: a current asset stock account on the product; then Retry now on the failed job.
    product.inventory_account = kiwi.product.inventory_account
    product.save()
    job_retry(job=failed, user=None)
    [retried] = run_journal_jobs()
    assert retried.pk == failed.pk
    assert retried.state == JobState.SUCCEEDED
    journal = CostOfSalesJournal.objects.get()
    assert (journal.status, journal.total_debit) == (JournalStatus.POSTED, Decimal("8.00"))
