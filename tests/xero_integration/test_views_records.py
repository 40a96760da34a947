"""The Xero panel, list columns and record actions, through the pages."""

import pytest
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobKind, JobState
from billing.models import Customer
from tests.billing.factories import CustomerFactory, UserFactory
from tests.xero_integration.test_invoice_sync import _run_all
from xero_integration.models import SyncExclusion, XeroRecordLink

pytestmark = pytest.mark.django_db


def test_customer_page_shows_identifier_and_last_push_after_sync(client, world):
    url = world.customer.get_absolute_url()
    page = client.get(url).content.decode()
    assert "Never synced with Xero" in page and "Sync Customer with Xero Contact" in page
    response = client.post(
        reverse("xero_integration:record_sync", args=["customer", world.customer.pk])
    )
    assert response["Location"] == url
    _run_all()
    link = XeroRecordLink.objects.get(content_type__model="customer", object_id=world.customer.pk)
    page = client.get(url).content.decode()
    assert link.xero_id in page
    assert "BMS and Xero agree" in page
    assert "View in Xero" in page
    assert "BMS is the master" in page


def test_a_failed_sync_shows_the_error_in_red_on_the_record(client, world):
    world.customer.email = "not-an-email"
    Customer.objects.filter(pk=world.customer.pk).update(email="not-an-email")
    client.post(reverse("xero_integration:record_sync", args=["customer", world.customer.pk]))
    _run_all()
    page = client.get(world.customer.get_absolute_url()).content.decode()
    assert 'class="error" role="alert"' in page
    assert "Email address must be valid." in page


def test_the_lists_show_accounting_code_and_filter_by_sync_state(client, world):
    other = CustomerFactory(entity=world.entity, name="Never Synced Ltd")
    client.post(reverse("xero_integration:record_sync", args=["customer", world.customer.pk]))
    _run_all()
    link = XeroRecordLink.objects.get(content_type__model="customer", object_id=world.customer.pk)
    page = client.get(reverse("billing:customer_list") + "?synced=yes").content.decode()
    assert "Last Accounting Export Date" in page and link.xero_id in page
    assert "Never Synced Ltd" not in page
    page = client.get(reverse("billing:customer_list") + "?synced=no").content.decode()
    assert other.name in page and world.customer.name not in page


def test_delete_integration_asks_first_and_removes_only_the_link(client, world):
    client.post(reverse("xero_integration:record_sync", args=["customer", world.customer.pk]))
    _run_all()
    url = reverse("xero_integration:record_unlink", args=["customer", world.customer.pk])
    assert "Delete the Xero integration of Harbour Cafe?" in client.get(url).content.decode()
    assert XeroRecordLink.objects.filter(object_id=world.customer.pk).exists()
    client.post(url)
    assert not XeroRecordLink.objects.filter(
        content_type__model="customer", object_id=world.customer.pk
    ).exists()
    contacts = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)["contacts"]
    assert [c["Name"] for c in contacts.values()] == ["Harbour Cafe"]


def test_do_not_export_needs_a_reason_and_records_who_set_it(client, world):
    url = reverse("xero_integration:record_exclusion", args=["customer", world.customer.pk])
    client.post(url, {"direction": "export", "reason": "", "action": "set"})
    assert not SyncExclusion.objects.exists()
    client.post(url, {"direction": "export", "reason": "Cash customer", "action": "set"})
    exclusion = SyncExclusion.objects.get()
    assert exclusion.reason == "Cash customer"
    assert exclusion.set_by is not None and exclusion.set_by.is_superuser


def test_bulk_sync_of_selected_customers_shows_progress(client, world):
    chosen = [CustomerFactory(entity=world.entity, name=f"Chosen {n}") for n in range(3)]
    response = client.post(
        reverse("xero_integration:bulk_sync"), {"customer": [c.pk for c in chosen], "entity": ""}
    )
    job = BackgroundJob.objects.get(kind=JobKind.BULK_CUSTOMER_SYNC)
    assert response["Location"] == reverse("xero_integration:bulk_progress", args=[job.pk])
    _run_all()
    job.refresh_from_db()
    assert (job.state, job.progress_done, job.progress_total) == (JobState.SUCCEEDED, 3, 3)
    page = client.get(response["Location"]).content.decode()
    assert '<progress max="3" value="3">' in page


def test_record_actions_are_post_only_and_staff_only(client, world):
    sync = reverse("xero_integration:record_sync", args=["customer", world.customer.pk])
    assert client.get(sync).status_code == 405
    client.logout()
    client.force_login(UserFactory(is_staff=False))
    assert client.post(sync).status_code == 403
    assert not BackgroundJob.objects.filter(kind=JobKind.PUSH_CONTACT).exists()
