"""BMS pointed at the Xero sandbox over real loopback HTTP, exactly as it reaches api.xero.com."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from xero_python.accounting import Contact, Contacts
from django.test import Client
from django.urls import reverse

from billing.models import Entity
from bms import clock
from xero_sandbox.seed import DEMO_NZ_TENANT_ID, DEMO_REDIRECT_URIS, DEMO_UK_TENANT_ID
from tests.conftest import IN_CI
from xero_sandbox.testing import SandboxHandle

CALLBACK = "http://testserver/xero/callback/"


@dataclass
class XeroEnv:
    sandbox: SandboxHandle
    nz_tenant_id: str = DEMO_NZ_TENANT_ID
    uk_tenant_id: str = DEMO_UK_TENANT_ID

    def advance(self, seconds: float) -> None:
        """Move BMS's clock and Xero's together."""
        clock.advance(seconds=seconds)
        self.sandbox.clock.advance(seconds)

    def create_contact_in_xero(self, name: str, tenant_id: str | None = None) -> str:
        """Play a Xero user adding a contact by hand; returns its ContactID."""
        sdk = self.sandbox.client()
        result = sdk.accounting.create_contacts(
            tenant_id or self.nz_tenant_id, Contacts(contacts=[Contact(name=name)])
        )
        return str(result.contacts[0].contact_id)

    def consent(self, authorize_url: str, *, tenant_ids: list[str] | None, allow: bool = True) -> str:
        """Play the user on Xero's consent page; returns the callback URL Xero redirects to."""
        session = requests.Session()
        page = session.get(authorize_url, allow_redirects=False, timeout=10)
        assert page.status_code == 200, page.text[:300]
        params = parse_qs(urlsplit(authorize_url).query)
        form: list[tuple[str, str]] = [(key, values[0]) for key, values in params.items()]
        form.append(("action", "allow" if allow else "cancel"))
        form += [("tenant", tenant) for tenant in (tenant_ids or [])]
        reply = session.post(
            authorize_url.split("?")[0], data=form, allow_redirects=False, timeout=10
        )
        assert reply.status_code == 302, reply.text[:300]
        return str(reply.headers["Location"])

    def connect(
        self, client: Client, entity: Entity, *, tenant_ids: list[str] | None = None,
        allow: bool = True,
    ) -> Any:
        """The whole Connect flow through BMS's views and the sandbox's consent page."""
        start = client.post(reverse("xero_integration:connect", args=[entity.pk]))
        assert start.status_code == 302, start.content[:300]
        callback = self.consent(
            start["Location"], tenant_ids=tenant_ids or [self.nz_tenant_id], allow=allow
        )
        assert callback.startswith(CALLBACK), callback
        return client.get(callback.removeprefix("http://testserver"))


@pytest.fixture
def xero_env(sandbox: SandboxHandle, settings: Any, redis_url: str) -> Iterator[XeroEnv]:
    if not redis_url:
        if IN_CI:
            pytest.fail("CI=true but BMS_TEST_REDIS_URL is not set: the Xero limiter needs Redis")
        pytest.skip("needs Redis for the Xero rate limiter: set BMS_TEST_REDIS_URL")
    # Each test starts with an empty limiter, as the sandbox starts with empty windows.
    limiter_redis = redis.Redis.from_url(redis_url)
    for key in limiter_redis.scan_iter("bms:xero-rl*"):
        limiter_redis.delete(key)
    settings.XERO_RATE_LIMIT_REDIS_URL = redis_url
    for name in ("XERO_API_BASE", "XERO_IDENTITY_BASE", "XERO_LOGIN_BASE"):
        setattr(settings, name, sandbox.url)
    settings.XERO_REDIRECT_URI = CALLBACK
    sandbox.configure_app(redirect_uris=[*DEMO_REDIRECT_URIS, CALLBACK])
    yield XeroEnv(sandbox=sandbox)
