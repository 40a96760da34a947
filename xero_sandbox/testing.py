"""Test helpers: run the sandbox in-process on a free loopback port, authorise an SDK client in
one line, and check every response against the official spec.

    from xero_sandbox.testing import sandbox, sandbox_server, xero  # pytest fixtures

    def test_something(xero):
        xero.accounting.get_contacts(xero.tenant_id)

or, without pytest:

    with SandboxHandle.start() as sb, patched_token_urls(sb.url):
        grant = sb.authorize()
        client = sdk_client(sb.url, grant.token_set)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.identity import IdentityApi

from . import control, spec
from .faults import Fault
from .seed import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_NZ_TENANT_ID,
    DEMO_REDIRECT_URIS,
    DEMO_UK_TENANT_ID,
)
from .server import Sandbox, SandboxHTTPServer, serve_in_thread
from .state import State

DEFAULT_SCOPE = (
    "openid profile email offline_access accounting.contacts accounting.settings "
    "accounting.transactions accounting.invoices accounting.payments accounting.manualjournals"
)


@dataclass
class Grant:
    """The outcome of a completed OAuth flow."""

    token_set: dict[str, Any]
    tenant_ids: list[str]
    connections: list[dict[str, Any]]
    auth_event_id: str | None = None


@dataclass
class SdkClient:
    api_client: ApiClient
    accounting: AccountingApi
    identity: IdentityApi
    holder: dict[str, Any] = field(default_factory=dict)
    tenant_ids: list[str] = field(default_factory=list)

    @property
    def token(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.holder["token"])

    @property
    def tenant_id(self) -> str:
        return self.tenant_ids[0]


class SandboxHandle:
    """A running sandbox (HTTP on loopback) plus in-process access to its state."""

    def __init__(self, sandbox: Sandbox, server: SandboxHTTPServer) -> None:
        self.sandbox = sandbox
        self.server = server
        host, port = server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        self.url = f"http://{host_text}:{port}"
        self.api_url = self.url + "/api.xro/2.0"

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: str = "demo",
        webhook_url: str | None = "",
    ) -> SandboxHandle:
        """webhook_url "" means "none", so tests never post to a BMS that is not running."""
        sandbox = Sandbox(seed=seed, webhook_url=webhook_url)
        server, _thread = serve_in_thread(sandbox, host, port)
        return cls(sandbox, server)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sandbox.stop()

    # in-process access
    @property
    def state(self) -> State:
        return self.sandbox.state

    store = state

    @property
    def clock(self) -> Any:
        return self.sandbox.clock

    def org(self, tenant_id: str = DEMO_NZ_TENANT_ID) -> dict[str, Any]:
        org = self.state.org(tenant_id)
        assert org is not None, tenant_id
        return org

    def reset(self, seed: str | None = None, **options: Any) -> None:
        self.sandbox.reset(seed, **options)
        self.sandbox.clock.reset()

    def seed_org(self, **kwargs: Any) -> dict[str, Any]:
        return self.sandbox.seed_org(**kwargs)

    def set_fault(self, kind: str, route: str = "*", **kwargs: Any) -> Fault:
        return self.sandbox.faults.add(kind=kind, route=route, **kwargs)

    def clear_faults(self) -> None:
        self.sandbox.faults.clear()

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return self.sandbox.set_limits(**limits)

    def reset_limit_counters(self) -> None:
        self.sandbox.reset_limit_counters()

    def set_settings(self, **settings: Any) -> None:
        with self.state.lock:
            self.state.settings.update(settings)

    def configure_app(self, client_id: str = DEMO_CLIENT_ID, **fields: Any) -> dict[str, Any]:
        return control.upsert_app(self.sandbox, {"client_id": client_id, **fields})

    def disconnect(self, tenant_id: str, client_id: str | None = None, revoke: bool = False) -> int:
        return self.sandbox.disconnect(tenant_id=tenant_id, client_id=client_id, revoke=revoke)

    def apply_payment(self, tenant_id: str, **kwargs: Any) -> dict[str, Any]:
        return control.apply_payment(self.sandbox, tenant_id, **kwargs)

    def delete_payment(self, tenant_id: str, payment_id: str) -> dict[str, Any]:
        return control.delete_payment(self.sandbox, tenant_id, payment_id)

    def archive_contact(self, tenant_id: str, contact_id: str) -> dict[str, Any]:
        return control.archive_contact(self.sandbox, tenant_id, contact_id)

    def requests_log(self, since: int = 0) -> list[dict[str, Any]]:
        with self.state.lock:
            return [e for e in self.state.request_log if e["seq"] > since]

    def rate_limited(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.rate_limited)

    def last_seq(self) -> int:
        with self.state.lock:
            return self.state.request_log[-1]["seq"] if self.state.request_log else 0

    def response_errors(self, since: int = 0) -> list[str]:
        return response_errors(self.requests_log(since))

    def authorize(self, **kwargs: Any) -> Grant:
        return authorize(self.url, **kwargs)

    def client(self, grant: Grant | None = None, **kwargs: Any) -> SdkClient:
        """An authorised SDK client for the demo app (runs the OAuth flow when no grant given)."""
        grant = grant or self.authorize(**kwargs)
        client = sdk_client(self.url, grant.token_set)
        client.tenant_ids = list(grant.tenant_ids)
        return client


def response_errors(entries: list[dict[str, Any]]) -> list[str]:
    """Check each logged response body against the spec's response schema for its operation."""
    import json  # noqa: PLC0415

    problems: list[str] = []
    for entry in entries:
        raw = entry.get("response_body")
        if not raw or entry.get("dropped"):
            continue
        body = json.loads(raw)
        path: str = entry["path"]
        status: int = entry["status"]
        if path.lower().startswith("/api.xro/2.0"):
            operation = spec.find_operation(entry["method"], path[len("/api.xro/2.0") :])
            if operation is None:
                problems.append(f"no spec operation for {entry['method']} {path}")
                continue
            problems.extend(spec.response_errors(operation, status, body))
        elif path.lower().startswith("/connections"):
            operation = spec.find_operation(entry["method"], "/Connections", identity=True)
            if operation is not None:
                problems.extend(spec.response_errors(operation, status, body))
        elif path == "/connect/token" and status == 200:
            problems.extend(spec.schema_errors("AccessToken", body, identity=True))
    return problems


# --- OAuth ----------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def authorize(
    base_url: str,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = DEMO_CLIENT_SECRET,
    redirect_uri: str = DEMO_REDIRECT_URIS[0],
    scope: str = DEFAULT_SCOPE,
    tenant_ids: list[str] | None = None,
    use_pkce: bool = True,
    basic_auth: bool = False,
) -> Grant:
    """The whole authorisation-code flow, approving the consent page like a user would.

    `tenant_ids` picks the organisations ticked on the consent page (default: all of the user's).
    """
    session = requests.Session()
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
    }
    if use_pkce:
        params.update({"code_challenge": challenge, "code_challenge_method": "S256"})
    page = session.get(
        f"{base_url}/identity/connect/authorize", params=params, allow_redirects=False, timeout=10
    )
    if page.status_code == 200:
        offered = _checkbox_values(page.text)
        chosen = tenant_ids if tenant_ids is not None else offered
        form = [*params.items(), ("action", "allow"), *(("tenant", t) for t in chosen)]
        page = session.post(
            f"{base_url}/identity/connect/authorize", data=form, allow_redirects=False, timeout=10
        )
    if page.status_code != 302:
        raise AssertionError(f"authorize did not redirect: {page.status_code} {page.text[:300]}")
    query = parse_qs(urlsplit(page.headers["Location"]).query)
    if "code" not in query:
        raise AssertionError(f"authorize denied: {page.headers['Location']}")
    assert query["state"] == [state], "state must round-trip"
    token_set = exchange_code(
        base_url,
        query["code"][0],
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        verifier=verifier if use_pkce else None,
        basic_auth=basic_auth,
    )
    from .identity import decode_jwt_claims  # noqa: PLC0415

    auth_event_id = decode_jwt_claims(token_set["access_token"]).get("authentication_event_id")
    connections = session.get(
        f"{base_url}/connections",
        params={"authEventId": auth_event_id},
        headers={"Authorization": f"Bearer {token_set['access_token']}"},
        timeout=10,
    ).json()
    return Grant(token_set, [c["tenantId"] for c in connections], connections, auth_event_id)


def exchange_code(
    base_url: str,
    code: str,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = DEMO_CLIENT_SECRET,
    redirect_uri: str = DEMO_REDIRECT_URIS[0],
    verifier: str | None = None,
    basic_auth: bool = False,
) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier:
        form["code_verifier"] = verifier
    auth = None
    if basic_auth and client_secret is not None:
        auth = (client_id, client_secret)
    else:
        form["client_id"] = client_id
        if client_secret is not None:
            form["client_secret"] = client_secret
    reply = requests.post(f"{base_url}/connect/token", data=form, auth=auth, timeout=10)
    if reply.status_code != 200:
        raise AssertionError(f"token exchange failed: {reply.status_code} {reply.text}")
    return cast(dict[str, Any], reply.json())


def _checkbox_values(page: str) -> list[str]:
    import re  # noqa: PLC0415

    return re.findall(r'name="tenant" value="([^"]+)"', page)


# --- SDK client -----------------------------------------------------------------------------------


def sdk_token(token_set: dict[str, Any]) -> dict[str, Any]:
    """The dict shape xero-python's token getter must return (scope as a list; expires_at set)."""
    token = dict(token_set)
    if isinstance(token.get("scope"), str):
        token["scope"] = token["scope"].split()
    token.setdefault("expires_at", time.time() + int(token.get("expires_in") or 0))
    return token


def sdk_client(
    base_url: str,
    token_set: dict[str, Any],
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
) -> SdkClient:
    """An AccountingApi/IdentityApi pair on the sandbox with urllib3 retries OFF (notes §12.10),
    so 429s and dropped replies reach the caller instead of being slept through or re-sent."""
    config = Configuration()  # a copy of the class default (TypeWithDefault): set on the instance
    config.debug = False
    config.oauth2_token = OAuth2Token(client_id=client_id, client_secret=client_secret)
    holder: dict[str, Any] = {"token": sdk_token(token_set)}

    def _get() -> dict[str, Any]:
        return cast(dict[str, Any], holder["token"])

    def _save(token: dict[str, Any]) -> None:
        holder["token"] = token

    api_client = ApiClient(
        config, pool_threads=1, oauth2_token_getter=_get, oauth2_token_saver=_save
    )
    api_client.rest_client.pool_manager = urllib3.PoolManager(num_pools=4, maxsize=8, retries=False)

    return SdkClient(
        api_client,
        AccountingApi(api_client, base_url=base_url + "/api.xro/2.0"),
        IdentityApi(api_client, base_url=base_url),
        holder,
    )


@contextlib.contextmanager
def patched_token_urls(base_url: str) -> Iterator[None]:
    """xero-python hard-codes identity.xero.com as class attributes (notes §12.2)."""
    saved = (
        TokenApi.refresh_token_url,
        TokenApi.revoke_token_url,
        TokenApi.client_credentials_token_url,
    )
    TokenApi.refresh_token_url = base_url + "/connect/token"
    TokenApi.revoke_token_url = base_url + "/connect/revocation"
    TokenApi.client_credentials_token_url = base_url + "/connect/token"
    try:
        yield
    finally:
        (
            TokenApi.refresh_token_url,
            TokenApi.revoke_token_url,
            TokenApi.client_credentials_token_url,
        ) = saved


# --- pytest fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    """One sandbox HTTP server for the whole test session."""
    handle = SandboxHandle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> Iterator[SandboxHandle]:
    """A freshly reset demo sandbox with the SDK's token URLs pointed at it. After the test,
    every response the sandbox produced must validate against the spec's response schema."""
    sandbox_server.reset("demo", webhook_url=None)
    start = sandbox_server.last_seq()
    with patched_token_urls(sandbox_server.url):
        yield sandbox_server
    problems = sandbox_server.response_errors(start)
    sandbox_server.clear_faults()
    assert not problems, "responses that do not fit the spec:\n" + "\n".join(problems[:20])


@pytest.fixture
def xero(sandbox: SandboxHandle) -> SdkClient:
    """An authorised SDK client for the demo app, connected to both demo organisations
    (tenant_ids[0] is the NZ organisation)."""
    client = sandbox.client()
    order = {DEMO_NZ_TENANT_ID: 0, DEMO_UK_TENANT_ID: 1}
    client.tenant_ids.sort(key=lambda t: order.get(t, 2))
    return client


def now_utc() -> datetime:
    from datetime import UTC  # noqa: PLC0415

    return datetime.now(UTC)
