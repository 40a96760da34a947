"""OAuth2 flow, token rotation and grace, connections and revocation - through the SDK (and
`requests` for the consent page and code exchange, which the SDK does not do)."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from xero_python.exceptions import HTTPStatusException, OAuth2InvalidGrantError

from xero_sandbox.identity import decode_jwt_claims
from xero_sandbox.seed import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_NZ_TENANT_ID,
    DEMO_REDIRECT_URIS,
    DEMO_UK_TENANT_ID,
)
from xero_sandbox.testing import DEFAULT_SCOPE, authorize, exchange_code, pkce_pair, sdk_client

REDIRECT = DEMO_REDIRECT_URIS[0]


def _authorize_params(**extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": DEFAULT_SCOPE,
        "state": "st4te",
    }
    params.update(extra)
    return params


def _code_via_form(url: str, tenants: list[str], **extra: str) -> str:
    params = _authorize_params(**extra)
    reply = requests.post(
        f"{url}/identity/connect/authorize",
        allow_redirects=False,
        timeout=5,
        data=[*params.items(), ("action", "allow"), *(("tenant", t) for t in tenants)],
    )
    assert reply.status_code == 302
    return parse_qs(urlsplit(reply.headers["Location"]).query)["code"][0]


def test_consent_page_lists_organisations_with_allow_and_cancel(sandbox):
    page = requests.get(
        f"{sandbox.url}/identity/connect/authorize", params=_authorize_params(), timeout=5
    )
    assert page.status_code == 200
    assert "Kiwi Coffee Roasters Ltd" in page.text and "Kiwi Coffee Roasters UK Ltd" in page.text
    assert sorted(re.findall(r'name="tenant" value="([^"]+)"', page.text)) == sorted(
        [DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID]
    )
    assert 'value="allow"' in page.text and 'value="cancel"' in page.text


def test_cancel_redirects_with_access_denied_and_state(sandbox):
    reply = requests.post(
        f"{sandbox.url}/identity/connect/authorize",
        allow_redirects=False,
        timeout=5,
        data={**_authorize_params(), "action": "cancel"},
    )
    assert reply.status_code == 302
    query = parse_qs(urlsplit(reply.headers["Location"]).query)
    assert reply.headers["Location"].startswith(REDIRECT)
    assert query == {"error": ["access_denied"], "state": ["st4te"]}


@pytest.mark.parametrize(
    "field,value", [("client_id", "NOPE"), ("redirect_uri", "http://evil.example/cb")]
)
def test_unknown_client_or_redirect_gets_an_error_page_not_a_redirect(sandbox, field, value):
    reply = requests.get(
        f"{sandbox.url}/identity/connect/authorize",
        allow_redirects=False,
        timeout=5,
        params=_authorize_params(**{field: value}),
    )
    assert reply.status_code == 400
    assert "Location" not in reply.headers


def test_full_flow_gives_tokens_and_connections_for_chosen_tenants(sandbox):
    grant = authorize(sandbox.url, tenant_ids=[DEMO_UK_TENANT_ID])
    tokens = grant.token_set
    assert set(tokens) == {
        "id_token",
        "access_token",
        "expires_in",
        "token_type",
        "refresh_token",
        "scope",
    }
    assert tokens["expires_in"] == 1800 and tokens["token_type"] == "Bearer"
    assert grant.tenant_ids == [DEMO_UK_TENANT_ID]
    claims = decode_jwt_claims(tokens["access_token"])
    assert claims["authentication_event_id"] == grant.auth_event_id

    client = sdk_client(sandbox.url, tokens)
    connections = client.identity.get_connections()
    assert [(c.tenant_id, c.tenant_type, c.tenant_name) for c in connections] == [
        (DEMO_UK_TENANT_ID, "ORGANISATION", "Kiwi Coffee Roasters UK Ltd")
    ]
    assert str(connections[0].auth_event_id) == grant.auth_event_id
    # Only X-AppMinLimit-Remaining on tenantless responses (notes §1).
    _data, _status, headers = client.identity.get_connections(_return_http_data_only=False)
    assert "X-AppMinLimit-Remaining" in headers and "X-MinLimit-Remaining" not in headers


def test_auto_approve_with_a_tenant_list_skips_the_page(sandbox):
    sandbox.configure_app(auto_approve=True, auto_approve_tenants=[DEMO_NZ_TENANT_ID])
    params = _authorize_params()
    reply = requests.get(
        f"{sandbox.url}/identity/connect/authorize", params=params, allow_redirects=False, timeout=5
    )
    assert reply.status_code == 302 and "code=" in reply.headers["Location"]
    grant = authorize(sandbox.url)
    assert grant.tenant_ids == [DEMO_NZ_TENANT_ID]


def test_connections_filter_by_auth_event_and_delete(sandbox):
    first = authorize(sandbox.url, tenant_ids=[DEMO_NZ_TENANT_ID])
    second = authorize(sandbox.url, tenant_ids=[DEMO_UK_TENANT_ID])
    client = sdk_client(sandbox.url, second.token_set)
    assert len(client.identity.get_connections()) == 2
    only_first = client.identity.get_connections(auth_event_id=first.auth_event_id)
    assert [c.tenant_id for c in only_first] == [DEMO_NZ_TENANT_ID]

    client.identity.delete_connection(only_first[0].id)
    assert [c.tenant_id for c in client.identity.get_connections()] == [DEMO_UK_TENANT_ID]
    with pytest.raises(HTTPStatusException) as missing:
        client.identity.delete_connection(only_first[0].id)
    assert missing.value.status == 404
    # The removed tenant is no longer reachable with the same token.
    with pytest.raises(HTTPStatusException) as forbidden:
        client.accounting.get_organisations(DEMO_NZ_TENANT_ID)
    assert forbidden.value.status == 403


def test_code_is_single_use(sandbox):
    verifier, challenge = pkce_pair()
    code = _code_via_form(
        sandbox.url, [DEMO_NZ_TENANT_ID], code_challenge=challenge, code_challenge_method="S256"
    )
    exchange_code(sandbox.url, code, verifier=verifier)
    reply = requests.post(
        f"{sandbox.url}/connect/token",
        timeout=5,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    assert reply.status_code == 400 and reply.text == '{"error":"invalid_grant"}'


def test_code_expires_after_five_minutes(sandbox):
    code = _code_via_form(sandbox.url, [DEMO_NZ_TENANT_ID])
    sandbox.clock.advance(301)
    reply = requests.post(
        f"{sandbox.url}/connect/token",
        timeout=5,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    assert reply.text == '{"error":"invalid_grant"}'


def test_bad_pkce_verifier_is_invalid_grant(sandbox):
    _verifier, challenge = pkce_pair()
    code = _code_via_form(
        sandbox.url, [DEMO_NZ_TENANT_ID], code_challenge=challenge, code_challenge_method="S256"
    )
    reply = requests.post(
        f"{sandbox.url}/connect/token",
        timeout=5,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "wrong" * 10,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    assert reply.status_code == 400 and reply.text == '{"error":"invalid_grant"}'


def test_client_secret_accepted_in_basic_auth_and_bad_secret_rejected(sandbox):
    grant = authorize(sandbox.url, basic_auth=True, use_pkce=False)
    assert grant.token_set["access_token"]
    code = _code_via_form(sandbox.url, [DEMO_NZ_TENANT_ID])
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:wrong".encode()).decode()
    reply = requests.post(
        f"{sandbox.url}/connect/token",
        timeout=5,
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert reply.status_code == 400 and reply.json() == {"error": "invalid_client"}


def test_refresh_rotates_and_old_token_has_a_30_minute_grace(sandbox):
    grant = authorize(sandbox.url)
    client = sdk_client(sandbox.url, grant.token_set)
    first_refresh = grant.token_set["refresh_token"]
    rotated = client.api_client.refresh_oauth2_token()
    assert rotated["refresh_token"] != first_refresh
    assert rotated["expires_in"] == 1800

    # Within the grace period the old token still works, repeatedly, and leads to the same chain.
    sandbox.clock.advance(29 * 60)
    again = sdk_client(sandbox.url, grant.token_set)
    assert again.api_client.refresh_oauth2_token()["refresh_token"] == rotated["refresh_token"]
    assert again.api_client.refresh_oauth2_token is not None
    third = sdk_client(sandbox.url, grant.token_set).api_client.refresh_oauth2_token()
    assert third["refresh_token"] == rotated["refresh_token"]

    # After the grace period: invalid_grant, which IdentityApi's handler recognises exactly.
    sandbox.clock.advance(2 * 60)
    stale = sdk_client(sandbox.url, grant.token_set)
    with pytest.raises(HTTPStatusException) as exc:
        stale.api_client.refresh_oauth2_token()
    assert exc.value.status == 400 and exc.value.body == b'{"error":"invalid_grant"}'
    # The new token keeps working.
    assert client.api_client.refresh_oauth2_token()["access_token"]


def test_invalid_grant_is_translated_by_identity_api(sandbox):
    grant = authorize(sandbox.url)
    client = sdk_client(
        sandbox.url, {**grant.token_set, "refresh_token": "not-a-token", "expires_at": 1}
    )
    with pytest.raises(OAuth2InvalidGrantError):
        client.identity.get_connections()  # the SDK refreshes first (expires_at in the past)


def test_refresh_token_expires_after_60_days(sandbox):
    grant = authorize(sandbox.url)
    sandbox.clock.advance(60 * 86400 + 1)
    with pytest.raises(HTTPStatusException) as exc:
        sdk_client(sandbox.url, grant.token_set).api_client.refresh_oauth2_token()
    assert exc.value.body == b'{"error":"invalid_grant"}'


def test_access_token_expires_after_30_minutes(sandbox):
    grant = authorize(sandbox.url)
    client = sdk_client(sandbox.url, grant.token_set)
    client.accounting.get_organisations(DEMO_NZ_TENANT_ID)
    sandbox.clock.advance(1801)
    with pytest.raises(HTTPStatusException) as exc:
        client.accounting.get_organisations(DEMO_NZ_TENANT_ID)
    assert exc.value.status == 401
    body = exc.value.body.decode()
    assert '"Title":"Unauthorized"' in body and "TokenExpired: token expired at " in body
    # Refreshing fixes it.
    client.api_client.refresh_oauth2_token()
    assert client.accounting.get_organisations(DEMO_NZ_TENANT_ID).organisations


def test_unconnected_tenant_is_403(sandbox):
    grant = authorize(sandbox.url, tenant_ids=[DEMO_NZ_TENANT_ID])
    client = sdk_client(sandbox.url, grant.token_set)
    with pytest.raises(HTTPStatusException) as exc:
        client.accounting.get_contacts(DEMO_UK_TENANT_ID)
    assert exc.value.status == 403 and b"AuthenticationUnsuccessful" in exc.value.body


def test_revocation_removes_all_connections_and_tokens(sandbox):
    grant = authorize(sandbox.url)
    client = sdk_client(sandbox.url, grant.token_set)
    client.api_client.revoke_oauth2_token()
    assert client.token["access_token"] is None
    fresh = authorize(sandbox.url, tenant_ids=[DEMO_NZ_TENANT_ID])
    assert len(sdk_client(sandbox.url, fresh.token_set).identity.get_connections()) == 1
    with pytest.raises(HTTPStatusException) as exc:
        sdk_client(sandbox.url, grant.token_set).api_client.refresh_oauth2_token()
    assert exc.value.body == b'{"error":"invalid_grant"}'
    with pytest.raises(HTTPStatusException) as unauthorised:
        sdk_client(sandbox.url, grant.token_set).accounting.get_organisations(DEMO_NZ_TENANT_ID)
    assert unauthorised.value.status == 401
