import pytest
from django.core.exceptions import ValidationError

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import Customer
from tests.billing.factories import AdminUserFactory, CustomerFactory, EntityFactory
from xero_integration.contact_sync import customer_push_enqueue
from xero_integration.customer_services import (
    contacts_import_apply,
    contacts_import_start,
    customer_sync_status,
    customers_bulk_sync_start,
    name_key,
    record_unlink,
    sync_exclusion_set,
)
from xero_integration.models import XeroRecordLink

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity


def _run_all() -> None:
    """Run due jobs until none is left, as workers would."""
    for _ in range(50):
        due = list(BackgroundJob.objects.filter(state=JobState.QUEUED).values_list("pk", flat=True))
        if not due:
            return
        for job_id in due:
            job_run(job_id=job_id)


def test_status_goes_grey_then_blue_then_red_with_the_changed_fields(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    assert customer_sync_status(customer=customer).colour == "grey"
    job = customer_push_enqueue(customer=customer)
    job_run(job_id=job.pk)
    status = customer_sync_status(customer=customer)
    assert (status.colour, status.changed_fields) == ("blue", [])
    assert status.latest_job.state == JobState.SUCCEEDED
    Customer.objects.filter(pk=customer.pk).update(email="new@harbour.example", phone="09 555")
    customer.refresh_from_db()
    status = customer_sync_status(customer=customer)
    assert (status.colour, status.changed_fields) == ("red", ["email", "phone"])


def test_unlink_removes_only_the_bms_side(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    job_run(job_id=customer_push_enqueue(customer=customer).pk)
    assert record_unlink(obj=customer, user=None) is True
    assert customer_sync_status(customer=customer).colour == "grey"
    assert [
        c["Name"] for c in xero_env.sandbox.org(xero_env.nz_tenant_id)["contacts"].values()
    ] == ["Harbour Cafe"]


def test_an_exclusion_needs_a_reason():
    customer = CustomerFactory()
    with pytest.raises(ValidationError) as exc:
        sync_exclusion_set(obj=customer, direction="export", reason="  ", user=None)
    assert "Say why this record must not be exported" in exc.value.message_dict["reason"][0]


def test_bulk_sync_pushes_every_customer_in_batches_with_progress(entity, xero_env):
    customers = [CustomerFactory(entity=entity, name=f"Bulk Customer {n:03d}") for n in range(120)]
    CustomerFactory(entity=entity, name="Archived Ltd", is_archived=True)
    parent = customers_bulk_sync_start(entity=entity, customer_ids=None, user=None)
    start = xero_env.sandbox.last_seq()
    _run_all()
    parent.refresh_from_db()
    assert parent.state == JobState.SUCCEEDED
    assert (parent.progress_done, parent.progress_total) == (120, 120)
    puts = [
        e for e in xero_env.sandbox.requests_log(start)
        if e["method"] == "PUT" and e["path"].endswith("/Contacts")
    ]  # fmt: skip
    assert len(puts) == 3  # 50 + 50 + 20
    assert XeroRecordLink.objects.filter(object_id__in=[c.pk for c in customers]).count() == 120


def test_bulk_sync_refuses_another_entitys_customers(entity):
    stranger = CustomerFactory()
    with pytest.raises(ValidationError) as exc:
        customers_bulk_sync_start(entity=entity, customer_ids=[stranger.pk], user=None)
    assert exc.value.messages == ["1 of the chosen customers belong to another entity."]
    assert not BackgroundJob.objects.filter(kind=JobKind.BULK_CUSTOMER_SYNC).exists()


def test_name_key_ignores_case_punctuation_and_company_suffixes():
    assert name_key("Harbour Café Ltd.") == name_key("harbour cafe limited") == "harbour cafe"
    assert name_key("O'Reilly & Sons") == "o reilly and sons"


def test_import_shows_exact_and_near_matches_and_running_it_twice_duplicates_nothing(
    entity, xero_env
):
    exact = CustomerFactory(entity=entity, name="Harbour Cafe")
    near = CustomerFactory(entity=entity, name="Dockside Deli Limited")
    for name in ("Harbour Cafe", "Dockside Deli Ltd.", "New Leaf Bakery"):
        xero_env.create_contact_in_xero(name)

    def review() -> dict[str, dict]:
        job = contacts_import_start(entity=entity, user=None)
        job_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.state == JobState.SUCCEEDED
        return job, {row["name"]: row for row in job.result["contacts"]}

    job, rows = review()
    assert (rows["Harbour Cafe"]["match"], rows["Harbour Cafe"]["customer_id"]) == (
        "exact",
        exact.pk,
    )
    assert (rows["Dockside Deli Ltd."]["match"], rows["Dockside Deli Ltd."]["customer_id"]) == (
        "near",
        near.pk,
    )
    assert rows["New Leaf Bakery"]["match"] == "none"
    decisions = {
        rows["Harbour Cafe"]["contact_id"]: "link",
        rows["Dockside Deli Ltd."]["contact_id"]: "link",
        rows["New Leaf Bakery"]["contact_id"]: "import",
    }
    summary = contacts_import_apply(job=job, decisions=decisions, user=None)
    assert (summary.linked, summary.imported, summary.skipped) == (2, 1, 0)
    assert Customer.objects.filter(entity=entity, name="New Leaf Bakery").count() == 1

    job, rows = review()
    assert all(row["already_linked"] for row in rows.values())
    summary = contacts_import_apply(job=job, decisions=decisions, user=None)
    assert (summary.linked, summary.imported, summary.skipped) == (0, 0, 3)
    assert Customer.objects.filter(entity=entity).count() == 3
    assert XeroRecordLink.objects.count() == 3
