import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.billing.factories import AdminUserFactory, EntityFactory, UserFactory
from tests.xero_integration.factories import XeroRecordLinkFactory
from xero_integration.models import (
    ConnectionStatus,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(AdminUserFactory())
    return client


def _last_message(response):
    """The newest flash message (earlier ones stay queued until a page shows them)."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


def test_connect_links_the_entity_to_the_organisation_it_authorised(admin_client, xero_env):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    response = xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    assert response.status_code == 302
    assert _last_message(response) == (
        "Kiwi Coffee Roasters Ltd now syncs with the Xero organisation Kiwi Coffee Roasters Ltd."
    )
    link = XeroEntityLink.objects.select_related("connection").get(entity=entity)
    assert link.tenant_id == xero_env.nz_tenant_id
    assert link.connection.status == ConnectionStatus.CONNECTED
    assert link.connection.authorisation.auth_event_id != ""
    assert XeroAuthorisation.objects.count() == 1


def test_authorising_two_organisations_lets_the_admin_choose(admin_client, xero_env):
    entity = EntityFactory(name="Kiwi Coffee Roasters UK Ltd")
    response = xero_env.connect(
        admin_client, entity, tenant_ids=[xero_env.nz_tenant_id, xero_env.uk_tenant_id]
    )
    assert response["Location"] == reverse("xero_integration:choose")
    page = admin_client.get(reverse("xero_integration:choose"))
    assert page.status_code == 200
    assert "Which organisation should Kiwi Coffee Roasters UK Ltd use?" in page.content.decode()
    uk = XeroConnection.objects.get(tenant_id=xero_env.uk_tenant_id)
    chosen = admin_client.post(reverse("xero_integration:choose"), {"connection_id": uk.pk})
    assert chosen.status_code == 302
    assert XeroEntityLink.objects.get(entity=entity).tenant_id == xero_env.uk_tenant_id
    # Both organisations share one token set, as Xero issues it.
    assert set(XeroConnection.objects.values_list("authorisation", flat=True)) == {
        XeroAuthorisation.objects.get().pk
    }


def test_cancelled_consent_stores_nothing(admin_client, xero_env):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    response = xero_env.connect(admin_client, entity, allow=False)
    assert _last_message(response) == (
        "The Xero sign-in for Kiwi Coffee Roasters Ltd was cancelled; nothing was changed."
    )
    assert XeroAuthorisation.objects.count() == 0
    assert XeroConnection.objects.count() == 0
    assert not XeroEntityLink.objects.exists()


def test_a_wrong_state_is_refused_and_stores_nothing(admin_client, xero_env):
    entity = EntityFactory()
    start = admin_client.post(reverse("xero_integration:connect", args=[entity.pk]))
    callback = xero_env.consent(start["Location"], tenant_ids=[xero_env.nz_tenant_id])
    forged = callback.replace("state=", "state=forged")
    response = admin_client.get(forged.removeprefix("http://testserver"))
    assert _last_message(response) == (
        "The reply from Xero does not belong to the sign-in this browser started (state "
        "mismatch), so it was refused and nothing was changed. Start again."
    )
    assert XeroAuthorisation.objects.count() == 0
    assert not XeroEntityLink.objects.exists()


def test_a_reused_code_is_refused(admin_client, xero_env):
    entity = EntityFactory()
    start = admin_client.post(reverse("xero_integration:connect", args=[entity.pk]))
    callback = xero_env.consent(start["Location"], tenant_ids=[xero_env.nz_tenant_id])
    path = callback.removeprefix("http://testserver")
    assert admin_client.get(path).status_code == 302
    assert XeroAuthorisation.objects.count() == 1
    # Replaying the same callback: the session no longer holds a pending sign-in.
    replay = admin_client.get(path)
    assert _last_message(replay) == (
        "This Xero sign-in was not started from this browser, or was already completed; start "
        "again from Admin → Integrations."
    )
    assert XeroAuthorisation.objects.count() == 1


def test_a_code_xero_refuses_is_reported_and_nothing_stored(admin_client, xero_env):
    entity = EntityFactory()
    start = admin_client.post(reverse("xero_integration:connect", args=[entity.pk]))
    callback = xero_env.consent(start["Location"], tenant_ids=[xero_env.nz_tenant_id])
    first = callback.removeprefix("http://testserver")
    admin_client.get(first)
    # A second sign-in whose callback carries the first, already-used code.
    again = admin_client.post(reverse("xero_integration:connect", args=[entity.pk]))
    state = again["Location"].split("state=")[1].split("&")[0]
    code = first.split("code=")[1].split("&")[0]
    response = admin_client.get(f"/xero/callback/?code={code}&state={state}")
    assert _last_message(response).startswith(
        "Xero would not exchange the sign-in code (invalid_grant)"
    )
    assert XeroAuthorisation.objects.count() == 1


def test_connecting_an_entity_with_synced_records_to_another_organisation_is_refused(
    admin_client, xero_env
):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(admin_client, entity, tenant_ids=[xero_env.nz_tenant_id])
    XeroRecordLinkFactory(entity=entity, tenant_id=xero_env.nz_tenant_id)
    response = xero_env.connect(admin_client, entity, tenant_ids=[xero_env.uk_tenant_id])
    assert _last_message(response) == (
        "Kiwi Coffee Roasters Ltd's records are synced with the Xero organisation “Kiwi Coffee "
        "Roasters Ltd”. Connecting it to “Kiwi Coffee Roasters UK Ltd” instead would disrupt "
        "existing synced records, so it was refused. Re-authorise “Kiwi Coffee Roasters Ltd” "
        "instead."
    )
    assert XeroEntityLink.objects.get(entity=entity).tenant_id == xero_env.nz_tenant_id


def test_staff_cannot_start_a_connection(client, xero_env):
    client.force_login(UserFactory())
    entity = EntityFactory()
    assert client.post(reverse("xero_integration:connect", args=[entity.pk])).status_code == 403
    assert client.get(reverse("xero_integration:integrations")).status_code == 403


def test_connect_is_post_only(admin_client, xero_env):
    entity = EntityFactory()
    assert (
        admin_client.get(reverse("xero_integration:connect", args=[entity.pk])).status_code == 405
    )
