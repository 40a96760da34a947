"""Admin → Journals: the list, a journal's page, and the Rebuild and Push now actions."""

from datetime import timedelta
from decimal import Decimal
from typing import cast

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobKind, JobState, JobTrigger
from journals.models import CostOfSalesJournal, JournalStatus
from journals.services import cost_of_sales_journal_post, cost_of_sales_journals_run
from tests.billing.factories import AdminUserFactory, UserFactory
from tests.journals.conftest import at, move_to, run_journal_jobs

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.urls("tests.journals.urls"),
]

DAY = timedelta(days=1)


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def posted_with_adjustment(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 9))
    kiwi.release_invoice("5")
    move_to(xero_env, at(d1, 12))
    cost_of_sales_journal_post(entity=kiwi.entity, journal_date=d1)
    run_journal_jobs()
    move_to(xero_env, at(d1, 15))
    kiwi.release_credit_note("2")
    move_to(xero_env, at(d1 + DAY, 1, 30))
    cost_of_sales_journals_run()
    run_journal_jobs()
    return list(CostOfSalesJournal.objects.order_by("sequence"))


def test_the_list_shows_both_journals_of_a_day_with_state_totals_and_xero_links(
    admin_client, posted_with_adjustment, xero_env, kiwi
):
    original, adjustment = posted_with_adjustment
    page = admin_client.get(reverse("journals:list"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Cost of sales adjustment 1" in body
    assert body.count("View in Xero") == 2
    assert f"{xero_env.sandbox.url}/__sandbox__/ui/{kiwi.tenant_id}/" in body
    assert "20.00 NZD" in body and "8.00 NZD" in body
    assert body.count('green">Posted<') == 2
    detail = admin_client.get(reverse("journals:detail", args=[adjustment.pk])).content.decode()
    assert adjustment.narration in detail
    assert "Adjustment: Stock invoiced on" in detail  # 640 is debited back
    assert reverse("journals:detail", args=[original.pk]) in detail


def test_rebuild_and_push_now_are_post_only_admin_only_and_csrf_protected(kiwi, xero_env, d1):
    move_to(xero_env, at(d1, 9))
    kiwi.release_invoice("5")
    move_to(xero_env, at(d1, 12))
    journal = cost_of_sales_journal_post(entity=kiwi.entity, journal_date=d1).journal
    journal_jobs = BackgroundJob.objects.filter(kind=JobKind.COST_OF_SALES_JOURNAL)
    journal_jobs.delete()
    rebuild = reverse("journals:rebuild", args=[journal.pk])
    push = reverse("journals:push", args=[journal.pk])

    clerk = Client()
    clerk.force_login(cast(User, UserFactory()))
    assert clerk.get(reverse("journals:list")).status_code == 403
    assert clerk.post(push).status_code == 403

    admin = Client(enforce_csrf_checks=True)
    admin.force_login(cast(User, AdminUserFactory()))
    assert admin.get(push).status_code == 405
    assert admin.post(push).status_code == 403  # no CSRF token
    assert not journal_jobs.exists()

    admin = Client()
    admin.force_login(cast(User, AdminUserFactory()))
    response = admin.post(rebuild)
    assert response.status_code == 302
    assert _messages(response)[-1].endswith(": ready to post.")
    response = admin.post(push)
    job = journal_jobs.get()
    assert (job.kind, job.triggered_by, job.target_object_id) == (
        JobKind.COST_OF_SALES_JOURNAL,
        JobTrigger.USER,
        journal.pk,
    )
    run_journal_jobs()
    journal.refresh_from_db()
    assert journal.status == JournalStatus.POSTED
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED

    response = admin.post(rebuild)
    assert "never rewritten" in _messages(response)[-1]
    journal.refresh_from_db()
    assert journal.total_debit == Decimal("20.00")
