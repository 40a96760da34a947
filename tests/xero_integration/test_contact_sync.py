"""Customer → Xero contact pushes against the sandbox over real HTTP."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import Customer
from bms import clock
from tests.billing.factories import AdminUserFactory, CustomerFactory, EntityFactory
from tests.xero_integration.factories import XeroEntityLinkFactory
from xero_integration.contact_sync import customer_push_enqueue
from xero_integration.models import SyncDirection, SyncExclusion, XeroConnection, XeroRecordLink

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity


def _contacts(xero_env, tenant_id=None):
    org = xero_env.sandbox.org(tenant_id or xero_env.nz_tenant_id)
    return list(org["contacts"].values())


def _named(xero_env, name):
    return [c for c in _contacts(xero_env) if c["Name"] == name]


def _push(customer) -> BackgroundJob:
    job = customer_push_enqueue(customer=customer)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def _link(customer):
    return XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk
    ).first()


def _put_contact_calls(xero_env, since):
    return [e for e in xero_env.sandbox.requests_log(since) if e["path"].endswith("/Contacts")]


def test_first_push_creates_the_contact_and_stores_its_identifier(entity, xero_env):
    customer = CustomerFactory(
        entity=entity, name="Harbour Cafe", email="accounts@harbour.example", phone="021 555",
        street_line1="1 Quay St", street_city="Auckland", tax_number="123-456-789",
        payment_terms_type="OFFOLLOWINGMONTH", payment_terms_day=20,
    )  # fmt: skip
    start = xero_env.sandbox.last_seq()
    job = _push(customer)
    assert job.state == JobState.SUCCEEDED
    [contact] = _named(xero_env, "Harbour Cafe")
    link = _link(customer)
    assert link.xero_id == contact["ContactID"]
    assert contact["ContactNumber"] == f"BMS-C{customer.pk}"
    assert contact["EmailAddress"] == "accounts@harbour.example"
    assert contact["TaxNumber"] == "123-456-789"
    assert contact["PaymentTerms"]["Sales"] == {"Day": 20, "Type": "OFFOLLOWINGMONTH"}
    assert link.last_pushed_at is not None
    assert job.external_url.endswith(contact["ContactID"])
    # Never synced: created directly, with no look-up call first.
    calls = _put_contact_calls(xero_env, start)
    assert [(c["method"], c["status"]) for c in calls] == [("PUT", 200)]


def test_a_later_push_updates_the_same_contact(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    _push(customer)
    Customer.objects.filter(pk=customer.pk).update(email="new@harbour.example")
    customer.refresh_from_db()
    job = _push(customer)
    assert job.state == JobState.SUCCEEDED, (job.wait_reason, job.error_message)
    [contact] = _named(xero_env, "Harbour Cafe")
    assert contact["EmailAddress"] == "new@harbour.example"
    assert len(_contacts(xero_env)) == 1


def test_unlink_then_resync_matches_the_contact_by_name(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    _push(customer)
    contact_id = _link(customer).xero_id
    _link(customer).delete()  # Delete Integration: only the BMS-side link goes
    job = _push(customer)
    assert job.state == JobState.SUCCEEDED
    assert _link(customer).xero_id == contact_id
    assert len(_named(xero_env, "Harbour Cafe")) == 1


def test_a_contact_made_in_xero_by_hand_is_matched_by_name_and_overwritten(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Dockside Deli", email="bms@dockside.example")
    xero_env.create_contact_in_xero("Dockside Deli")
    job = _push(customer)
    assert job.state == JobState.SUCCEEDED
    [contact] = _named(xero_env, "Dockside Deli")
    assert contact["EmailAddress"] == "bms@dockside.example"  # BMS is the master
    assert contact["ContactNumber"] == f"BMS-C{customer.pk}"


def test_a_name_clash_with_another_bms_customers_contact_is_reported(entity, xero_env):
    first = CustomerFactory(entity=entity, name="Harbour Cafe", email="a@harbour.example")
    _push(first)
    branch = EntityFactory(name="Kiwi Coffee Wellington", base_currency="NZD")
    XeroEntityLinkFactory(entity=branch, connection=XeroConnection.objects.get())
    second = CustomerFactory(entity=branch, name="Harbour Cafe", email="b@other.example")
    job = _push(second)
    assert job.state == JobState.FAILED
    assert job.error_message.startswith(
        f"Name clash: Harbour Cafe (#{second.pk}, Kiwi Coffee Wellington) has the same name as "
        f"the Xero contact “Harbour Cafe”, which belongs to BMS customer “Harbour Cafe” of "
        f"Kiwi Coffee Roasters Ltd (#{first.pk})."
    )
    assert _link(second) is None
    assert len(_named(xero_env, "Harbour Cafe")) == 1


def test_customers_of_two_entities_sharing_an_organisation_may_share_a_contact(entity, xero_env):
    first = CustomerFactory(entity=entity, name="Harbour Cafe", email="ap@harbour.example")
    _push(first)
    branch = EntityFactory(name="Kiwi Coffee Wellington", base_currency="NZD")
    XeroEntityLinkFactory(entity=branch, connection=XeroConnection.objects.get())
    second = CustomerFactory(entity=branch, name="Harbour Cafe", email="AP@harbour.example")
    job = _push(second)
    assert job.state == JobState.SUCCEEDED
    assert job.result["shared_with"] == first.pk
    assert _link(second).xero_id == _link(first).xero_id
    assert len(_named(xero_env, "Harbour Cafe")) == 1


def test_an_archived_contact_is_reported_with_what_to_do(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    _push(customer)
    xero_env.sandbox.archive_contact(xero_env.nz_tenant_id, _link(customer).xero_id)
    job = _push(customer)
    assert job.state == JobState.FAILED
    assert job.error_message == (
        "The Xero contact for Harbour Cafe is archived in Xero. Restore it in Xero and sync "
        "again, or use Delete Integration here and sync to create a new contact."
    )


def test_do_not_export_skips_with_the_reason(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Cash Sales")
    SyncExclusion.objects.create(
        content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk,
        direction=SyncDirection.EXPORT, reason="Walk-in customers stay in BMS",
        set_at=clock.now(),
    )  # fmt: skip
    start = xero_env.sandbox.last_seq()
    job = _push(customer)
    assert job.state == JobState.SKIPPED
    assert job.result == {"skipped_reason": "skipped: Walk-in customers stay in BMS"}
    assert _put_contact_calls(xero_env, start) == []
    assert _named(xero_env, "Cash Sales") == []


def test_a_dropped_reply_is_retried_with_the_same_key_and_creates_no_duplicate(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    xero_env.sandbox.set_fault("commit_then_drop", "PUT /Contacts", count=1)
    job = _push(customer)
    assert job.state == JobState.QUEUED  # transient: retried later
    assert len(_named(xero_env, "Harbour Cafe")) == 1  # Xero did create it
    assert _link(customer) is None
    xero_env.advance(90)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert len(_named(xero_env, "Harbour Cafe")) == 1
    assert _link(customer).xero_id == _named(xero_env, "Harbour Cafe")[0]["ContactID"]
    keys = [
        e["idempotency_key"] for e in xero_env.sandbox.requests_log(0)
        if e["method"] == "PUT" and e["path"].endswith("/Contacts")
    ]  # fmt: skip
    assert len(keys) == 2 and keys[0] == keys[1]


def test_a_dropped_reply_retried_after_xeros_window_is_looked_up_first(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    xero_env.sandbox.set_fault("commit_then_drop", "PUT /Contacts", count=1)
    job = _push(customer)
    assert job.state == JobState.QUEUED
    xero_env.advance(10 * 60)  # past Xero's 6-minute idempotency window
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert len(_named(xero_env, "Harbour Cafe")) == 1
    assert _link(customer).xero_id == _named(xero_env, "Harbour Cafe")[0]["ContactID"]


def test_a_batch_with_one_invalid_element_keeps_the_valid_ones(entity, xero_env):
    good = [CustomerFactory(entity=entity, name=f"Good Customer {n}") for n in range(3)]
    bad = CustomerFactory(entity=entity, name="Bad Email Ltd", email="not-an-email")
    Customer.objects.filter(pk=bad.pk).update(email="not-an-email")
    with transaction.atomic():
        jobs = [customer_push_enqueue(customer=c) for c in [*good, bad]]
    start = xero_env.sandbox.last_seq()
    job_run(job_id=jobs[0].pk)  # claims the whole batch
    states = {j.pk: BackgroundJob.objects.get(pk=j.pk).state for j in jobs}
    assert [states[j.pk] for j in jobs] == [
        JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED,
    ]  # fmt: skip
    failed = BackgroundJob.objects.get(pk=jobs[3].pk)
    assert failed.error_message == (
        "Xero refused the contact for Bad Email Ltd: Email address must be valid. Correct the "
        "customer in BMS and sync again."
    )
    assert len(_put_contact_calls(xero_env, start)) == 1  # one request for the whole batch
    assert sorted(c["Name"] for c in _contacts(xero_env)) == [
        "Good Customer 0", "Good Customer 1", "Good Customer 2",
    ]  # fmt: skip


def test_two_sync_presses_make_one_job(entity, xero_env):
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    first = customer_push_enqueue(customer=customer)
    second = customer_push_enqueue(customer=customer)
    assert first.pk == second.pk
    assert BackgroundJob.objects.filter(kind=JobKind.PUSH_CONTACT).count() == 1
