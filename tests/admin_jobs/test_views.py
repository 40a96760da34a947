from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobAttempt, JobAttemptOutcome, JobKind, JobState
from admin_jobs.selectors import job_banner_for_user
from bms import clock
from tests.admin_jobs.factories import BackgroundJobFactory
from tests.billing.factories import AdminUserFactory, EntityFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin_jobs:job_list")


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(AdminUserFactory())
    return client


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory())
    return client


def failed_job(**overrides: Any) -> BackgroundJob:
    fields: dict[str, Any] = {
        "state": JobState.FAILED,
        "not_before": None,
        "finished_at": clock.now(),
        "error_message": "Xero rejected the invoice: account 999 is not valid. Fix the "
        "product's revenue account, then press Retry now.",
    }
    fields.update(overrides)
    return BackgroundJobFactory(**fields)


def page_ids(response: Any) -> list[int]:
    return [job.pk for job in response.context["page"].object_list]


def test_the_three_tabs_show_their_jobs(admin_client: Client) -> None:
    queued = BackgroundJobFactory()
    waiting = BackgroundJobFactory(
        state=JobState.WAITING, not_before=None, wait_reason="Waiting for: Contact push — X"
    )
    running = BackgroundJobFactory(
        state=JobState.RUNNING, lease_until=clock.now(), lease_token="t" * 32
    )
    succeeded = BackgroundJobFactory(state=JobState.SUCCEEDED)
    failed = failed_job()
    resolved = failed_job(resolved_at=clock.now(), resolved_reason="Done by hand")

    queue = admin_client.get(LIST)
    history = admin_client.get(LIST, {"tab": "history"})
    unresolved = admin_client.get(LIST, {"tab": "unresolved"})

    assert queue.status_code == history.status_code == unresolved.status_code == 200
    assert page_ids(queue) == [running.pk, waiting.pk, queued.pk]
    assert page_ids(history) == [resolved.pk, failed.pk, succeeded.pk]
    assert page_ids(unresolved) == [failed.pk]
    assert b"Waiting for: Contact push" in queue.content
    assert b"account 999 is not valid" in unresolved.content
    assert b"Retry all failed (1)" in unresolved.content
    assert unresolved.context["unresolved_count"] == 1


def test_filters_and_search(admin_client: Client) -> None:
    entity = EntityFactory()
    match = failed_job(entity=entity, kind=JobKind.PUSH_INVOICE, description="INV-0042 Harbour")
    failed_job(entity=entity, kind=JobKind.PUSH_CONTACT, description="Harbour Cafe")
    failed_job(kind=JobKind.PUSH_INVOICE, description="INV-0043 Harbour")
    old = failed_job(entity=entity, kind=JobKind.PUSH_INVOICE, description="INV-0001 Harbour")
    BackgroundJob.objects.filter(pk=old.pk).update(created_at=clock.now() - timedelta(days=30))
    today = clock.now().date().isoformat()

    response = admin_client.get(
        LIST,
        {
            "tab": "history",
            "entity": entity.pk,
            "kind": JobKind.PUSH_INVOICE,
            "state": JobState.FAILED,
            "date_from": today,
            "date_to": today,
            "q": "harbour",
        },
    )

    assert page_ids(response) == [match.pk]
    assert f"entity={entity.pk}".encode() in response.content  # kept in the tab links


def test_pagination(admin_client: Client, settings: Any) -> None:
    settings.BMS_LIST_PAGE_SIZE = 2
    jobs = [BackgroundJobFactory() for _ in range(5)]

    response = admin_client.get(LIST, {"page": 3})

    assert page_ids(response) == [jobs[0].pk]
    assert b"Page 3 of 3" in response.content


def test_detail_shows_attempts_error_links_dependency_and_progress(admin_client: Client) -> None:
    contact = BackgroundJobFactory(kind=JobKind.PUSH_CONTACT, description="Harbour Cafe")
    job = failed_job(
        target_url="/billing/invoices/42/",
        external_url="https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=abc",
        error_detail={"ValidationErrors": [{"Message": "Account code '999' is not valid"}]},
        depends_on=contact,
        progress_total=5,
        progress_done=3,
    )
    JobAttempt.objects.create(
        job=job,
        number=1,
        lease_token="a" * 32,
        started_at=clock.now(),
        ended_at=clock.now(),
        outcome=JobAttemptOutcome.PERMANENT,
        error_message="Xero said 400",
    )

    response = admin_client.get(reverse("admin_jobs:job_detail", args=[job.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "account 999 is not valid" in content
    assert "&quot;Message&quot;: &quot;Account code &#x27;999&#x27; is not valid&quot;" in content
    assert 'href="/billing/invoices/42/"' in content
    assert "https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=abc" in content
    assert "Xero said 400" in content
    assert '<progress value="3" max="5">' in content
    assert f"#{contact.pk} Contact push — Harbour Cafe" in content
    assert "Retry now" in content and "Mark resolved" in content


def test_pages_are_for_admins_only(staff_client: Client) -> None:
    job = failed_job()

    assert staff_client.get(LIST).status_code == 403
    assert staff_client.get(reverse("admin_jobs:job_detail", args=[job.pk])).status_code == 403


@pytest.mark.parametrize("name", ["job_retry", "job_cancel", "job_resolve"])
def test_actions_answer_get_with_405(admin_client: Client, name: str) -> None:
    job = failed_job()

    response = admin_client.get(reverse(f"admin_jobs:{name}", args=[job.pk]))

    assert response.status_code == 405
    assert admin_client.get(reverse("admin_jobs:job_retry_all_failed")).status_code == 405
    assert BackgroundJob.objects.get(pk=job.pk).state == JobState.FAILED


def test_actions_need_a_csrf_token(published: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(AdminUserFactory())
    job = failed_job()

    response = client.post(reverse("admin_jobs:job_retry", args=[job.pk]))

    assert response.status_code == 403
    assert BackgroundJob.objects.get(pk=job.pk).state == JobState.FAILED


@pytest.mark.parametrize("name", ["job_retry", "job_cancel", "job_resolve"])
def test_actions_are_for_admins_only(staff_client: Client, name: str) -> None:
    job = failed_job()

    response = staff_client.post(reverse(f"admin_jobs:{name}", args=[job.pk]), {"reason": "x"})

    assert response.status_code == 403
    job.refresh_from_db()
    assert (job.state, job.resolved_at) == (JobState.FAILED, None)


def test_retry_now(admin_client: Client, published: Any) -> None:
    job = failed_job()

    response = admin_client.post(reverse("admin_jobs:job_retry", args=[job.pk]))

    assert response.status_code == 302
    assert response["Location"] == reverse("admin_jobs:job_detail", args=[job.pk])
    job.refresh_from_db()
    assert (job.state, job.error_message) == (JobState.QUEUED, "")


def test_retry_of_a_succeeded_job_is_refused_with_a_message(admin_client: Client) -> None:
    job = BackgroundJobFactory(state=JobState.SUCCEEDED)

    response = admin_client.post(reverse("admin_jobs:job_retry", args=[job.pk]), follow=True)

    assert b"A succeeded job cannot be retried." in response.content
    assert BackgroundJob.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_retry_all_failed_respects_the_filters(admin_client: Client, published: Any) -> None:
    entity = EntityFactory()
    mine = [failed_job(entity=entity), failed_job(entity=entity)]
    other = failed_job()

    response = admin_client.post(reverse("admin_jobs:job_retry_all_failed"), {"entity": entity.pk})

    assert response.status_code == 302
    assert [BackgroundJob.objects.get(pk=j.pk).state for j in mine] == [JobState.QUEUED] * 2
    assert BackgroundJob.objects.get(pk=other.pk).state == JobState.FAILED


def test_cancel(admin_client: Client) -> None:
    job = BackgroundJobFactory()

    admin_client.post(reverse("admin_jobs:job_cancel", args=[job.pk]))

    assert BackgroundJob.objects.get(pk=job.pk).state == JobState.CANCELLED


def test_resolve_requires_a_reason(admin_client: Client) -> None:
    job = failed_job()
    url = reverse("admin_jobs:job_resolve", args=[job.pk])

    blank = admin_client.post(url, {"reason": "  "})
    assert blank.status_code == 400
    assert BackgroundJob.objects.get(pk=job.pk).resolved_at is None

    admin_client.post(url, {"reason": "Entered by hand in Xero"})
    job.refresh_from_db()
    assert job.resolved_reason == "Entered by hand in Xero"
    assert job.resolved_by is not None


# --- Banner -----------------------------------------------------------------------------------


def test_banner_for_any_signed_in_user_links_to_the_one_failed_record(
    staff_client: Client, settings: Any
) -> None:
    settings.BMS_BANNER_PROVIDERS = ["admin_jobs.selectors.job_banner_for_user"]
    page = reverse("admin_jobs:job_list")  # any page; a staff user gets it as 403 without banner
    assert staff_client.get(page).status_code == 403

    job = failed_job(target_url="/billing/invoices/42/")
    response = staff_client.get(reverse("billing:invoice_list"))

    assert response.context["banners"] == [
        {
            "text": "1 record failed to sync with Xero",
            "url": "/billing/invoices/42/",
            "link_text": "View errors",
        }
    ]
    banner = '1 record failed to sync with Xero — <a href="/billing/invoices/42/">View errors</a>'
    assert banner in response.content.decode()

    job.resolved_at = clock.now()
    job.save()
    response = staff_client.get(reverse("billing:invoice_list"))
    assert response.context["banners"] == []
    assert b"failed to sync with Xero" not in response.content


def test_banner_links_to_the_job_without_a_record_page_and_to_the_tab_for_several(
    django_assert_num_queries: Any,
) -> None:
    user = UserFactory()
    with django_assert_num_queries(1):
        assert job_banner_for_user(user=user) is None

    job = failed_job()
    with django_assert_num_queries(2):
        banner = job_banner_for_user(user=user)
    assert banner is not None
    assert banner["url"] == reverse("admin_jobs:job_detail", args=[job.pk])

    failed_job(target_url="/billing/invoices/7/")
    BackgroundJobFactory(state=JobState.SUCCEEDED)
    with django_assert_num_queries(1):
        banner = job_banner_for_user(user=user)
    assert banner == {
        "text": "2 records failed to sync with Xero",
        "url": reverse("admin_jobs:job_list") + "?tab=unresolved",
        "link_text": "View errors",
    }


def test_no_banner_for_anonymous_users() -> None:
    from django.contrib.auth.models import AnonymousUser

    failed_job()

    assert job_banner_for_user(user=AnonymousUser()) is None


def test_failed_parts_of_a_bulk_job_count_once_through_their_parent() -> None:
    parent = failed_job(progress_total=2)
    failed_job(parent=parent, dedupe_key="")
    failed_job(parent=parent, dedupe_key="")

    banner = job_banner_for_user(user=UserFactory())

    assert banner is not None
    assert banner["text"] == "1 record failed to sync with Xero"
