"""OAuth `state` and PKCE on the real connect flow, and tokens unreadable at rest.

The connect flow runs through BMS's views against the sandbox's consent page and token endpoint,
as in tests/xero_integration/test_connect.py; the raw-column check for factory-made tokens is
tests/xero_integration/test_crypto.py::test_tokens_are_unreadable_in_the_database.
"""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from tests.billing.factories import AdminUserFactory, EntityFactory
from xero_integration.models import XeroAuthorisation, XeroConnection, XeroEntityLink
from xero_integration.services import OAUTH_SESSION_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(AdminUserFactory())
    return client


def _challenge(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def _start(admin_client):
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    start = admin_client.post(reverse("xero_integration:connect", args=[entity.pk]))
    assert start.status_code == 302
    return entity, start["Location"]


def test_the_authorize_url_carries_state_and_an_s256_pkce_challenge(admin_client, xero_env):
    _, url = _start(admin_client)
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    pending = admin_client.session[OAUTH_SESSION_KEY]
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == _challenge(pending["verifier"])
    assert query["state"] == pending["state"]
    assert len(query["state"]) >= 20  # unguessable
    assert len(pending["verifier"]) >= 43  # RFC 7636 §4.1 minimum
    assert query["redirect_uri"] == "http://testserver/xero/callback/"
    # A second sign-in gets a fresh state and verifier.
    _, again = _start(admin_client)
    assert parse_qs(urlsplit(again).query)["state"][0] != query["state"]
    assert admin_client.session[OAUTH_SESSION_KEY]["verifier"] != pending["verifier"]


def test_the_token_exchange_sends_the_verifier_the_sandbox_checks(admin_client, xero_env):
    entity, url = _start(admin_client)
    callback = xero_env.consent(url, tenant_ids=[xero_env.nz_tenant_id])
    code = parse_qs(urlsplit(callback).query)["code"][0]
    issued = xero_env.sandbox.state.data["auth_codes"][code]
    assert issued["code_challenge"] == parse_qs(urlsplit(url).query)["code_challenge"][0]
    assert issued["used"] is False
    response = admin_client.get(callback.removeprefix("http://testserver"))
    assert response.status_code == 302
    # The sandbox only marks a code with a challenge used once a matching verifier came with it.
    assert issued["used"] is True
    assert XeroEntityLink.objects.get(entity=entity).tenant_id == xero_env.nz_tenant_id


def test_a_wrong_verifier_is_refused_and_nothing_is_stored(admin_client, xero_env):
    _, url = _start(admin_client)
    callback = xero_env.consent(url, tenant_ids=[xero_env.nz_tenant_id])
    session = admin_client.session
    pending = session[OAUTH_SESSION_KEY]
    session[OAUTH_SESSION_KEY] = {**pending, "verifier": "x" * 64}
    session.save()
    response = admin_client.get(callback.removeprefix("http://testserver"))
    assert [str(m) for m in get_messages(response.wsgi_request)][-1] == (
        "Xero would not exchange the sign-in code (invalid_grant): it was already used or has "
        "expired. Start again; nothing was changed."
    )
    assert XeroAuthorisation.objects.count() == 0
    assert XeroConnection.objects.count() == 0
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert xero_env.sandbox.state.data["auth_codes"][code]["used"] is False


def test_tokens_from_the_real_connect_flow_are_encrypted_in_the_database(admin_client, xero_env):
    entity, url = _start(admin_client)
    callback = xero_env.consent(url, tenant_ids=[xero_env.nz_tenant_id])
    admin_client.get(callback.removeprefix("http://testserver"))
    authorisation = XeroAuthorisation.objects.get()
    issued_access = set(xero_env.sandbox.state.data["access_tokens"])
    issued_refresh = set(xero_env.sandbox.state.data["refresh_tokens"])
    assert authorisation.access_token in issued_access
    assert authorisation.refresh_token in issued_refresh
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM xero_integration_xeroauthorisation "
            "WHERE id = %s",
            [authorisation.pk],
        )
        raw_access, raw_refresh = cursor.fetchone()
        cursor.execute("SELECT * FROM xero_integration_xeroauthorisation")
        every_column = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert raw_access.startswith("gAAAAA") and raw_refresh.startswith("gAAAAA")  # Fernet tokens
    for token in issued_access | issued_refresh:
        assert token not in every_column
        # Nor any recognisable part of it (the JWT header and payload segments).
        for part in token.split(".")[:2]:
            assert part not in every_column
