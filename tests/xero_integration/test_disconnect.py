import pytest
from django.db import transaction
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobState, JobTrigger
from admin_jobs.services import job_enqueue, job_run
from tests.billing.factories import AdminUserFactory, EntityFactory
from tests.xero_integration.factories import XeroRecordLinkFactory
from xero_integration.models import (
    ConnectionStatus,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(AdminUserFactory())
    return client


def _pull_accounts_job(entity, connection) -> BackgroundJob:
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.PULL_ACCOUNTS,
            entity=entity,
            target=connection,
            description=f"Chart of accounts — {connection.tenant_name}",
            direction=JobDirection.IMPORT,
            triggered_by=JobTrigger.USER,
            payload={"connection_id": connection.pk},
        )


def test_disconnect_page_shows_which_entities_use_the_organisation(admin_client, xero_env):
    nz = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    branch = EntityFactory(name="Kiwi Coffee Wellington")
    xero_env.connect(admin_client, nz, tenant_ids=[xero_env.nz_tenant_id])
    connection = XeroConnection.objects.get()
    admin_client.post(
        reverse("xero_integration:link_existing", args=[branch.pk]),
        {"connection_id": connection.pk},
    )
    page = admin_client.get(reverse("xero_integration:disconnect", args=[connection.pk]))
    body = page.content.decode()
    assert "<li>Kiwi Coffee Roasters Ltd</li>" in body and "<li>Kiwi Coffee Wellington</li>" in body
    assert XeroConnection.objects.get().status == ConnectionStatus.CONNECTED


def test_disconnect_keeps_record_links_and_reconnecting_resumes_without_duplicates(
    admin_client, xero_env
):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    connection = XeroConnection.objects.get()
    record_link = XeroRecordLinkFactory(entity=entity, tenant_id=xero_env.nz_tenant_id)
    start = xero_env.sandbox.last_seq()
    response = admin_client.post(reverse("xero_integration:disconnect", args=[connection.pk]))
    assert response.status_code == 302
    calls = [(e["method"], e["path"]) for e in xero_env.sandbox.requests_log(start)]
    assert ("DELETE", f"/connections/{connection.xero_connection_id}") in [
        (method, path.replace("/Connections/", "/connections/")) for method, path in calls
    ]
    # The only organisation of that authorisation: its token is revoked too.
    assert ("POST", "/connect/revocation") in calls
    connection.refresh_from_db()
    assert (connection.status, connection.authorisation) == (ConnectionStatus.DISCONNECTED, None)
    link = XeroEntityLink.objects.get(entity=entity)
    assert (link.connection, link.tenant_id) == (None, xero_env.nz_tenant_id)
    assert XeroRecordLink.objects.filter(pk=record_link.pk).exists()

    xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    assert XeroConnection.objects.count() == 1
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.CONNECTED
    assert XeroEntityLink.objects.get(entity=entity).connection == connection
    assert XeroRecordLink.objects.get(pk=record_link.pk).xero_id == record_link.xero_id


def test_refresh_token_is_not_revoked_while_another_organisation_uses_it(admin_client, xero_env):
    nz = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(admin_client, nz, tenant_ids=[xero_env.nz_tenant_id, xero_env.uk_tenant_id])
    nz_connection = XeroConnection.objects.get(tenant_id=xero_env.nz_tenant_id)
    admin_client.post(reverse("xero_integration:choose"), {"connection_id": nz_connection.pk})
    start = xero_env.sandbox.last_seq()
    admin_client.post(reverse("xero_integration:disconnect", args=[nz_connection.pk]))
    calls = [(e["method"], e["path"]) for e in xero_env.sandbox.requests_log(start)]
    assert ("POST", "/connect/revocation") not in calls
    uk_connection = XeroConnection.objects.get(tenant_id=xero_env.uk_tenant_id)
    assert uk_connection.status == ConnectionStatus.CONNECTED
    assert XeroAuthorisation.objects.get().is_revoked is False


def test_a_disconnect_made_in_xero_pauses_jobs_without_failing_them(admin_client, xero_env):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    connection = XeroConnection.objects.get()
    xero_env.sandbox.disconnect(xero_env.nz_tenant_id)
    job = _pull_accounts_job(entity, connection)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.WAITING
    assert "re-authorise" in job.wait_reason
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.NEEDS_REAUTH
    assert BackgroundJob.objects.filter(state=JobState.FAILED).count() == 0
    # The banner-level signal: the Integrations page says so.
    page = admin_client.get(reverse("xero_integration:integrations"))
    assert "Needs re-authorisation" in page.content.decode()

    # Re-authorising the same organisation resumes the paused job, which then succeeds.
    xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"accounts": 13, "tax_rates": 4}


def test_the_banner_tells_every_user_when_an_organisation_needs_reauthorising(client, xero_env):
    from tests.billing.factories import UserFactory

    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    client.logout()
    client.force_login(UserFactory())
    page = client.get(reverse("billing:customer_list")).content.decode()
    assert "Xero needs re-authorising" not in page
    XeroConnection.objects.update(status=ConnectionStatus.NEEDS_REAUTH)
    page = client.get(reverse("billing:customer_list")).content.decode()
    assert (
        "Xero needs re-authorising for Kiwi Coffee Roasters Ltd: syncing is paused until an "
        "admin re-authorises it" in page
    )
