"""BMS pointed at the Xero sandbox over real loopback HTTP, exactly as it reaches api.xero.com."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from django.test import Client
from django.urls import reverse
from xero_python.accounting import Contact, Contacts

from billing.models import AccountType, Entity, Invoice
from billing.services import LineInput, invoice_create, invoice_release
from bms import clock
from tests.billing.factories import (
    AccountFactory,
    AdminUserFactory,
    CustomerFactory,
    EntityFactory,
    TaxRateFactory,
)
from tests.conftest import IN_CI
from xero_integration.models import XeroConnection
from xero_integration.services import xero_accounts_pull
from xero_sandbox.seed import DEMO_NZ_TENANT_ID, DEMO_REDIRECT_URIS, DEMO_UK_TENANT_ID
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

    def consent(
        self, authorize_url: str, *, tenant_ids: list[str] | None, allow: bool = True
    ) -> str:
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
        self,
        client: Client,
        entity: Entity,
        *,
        tenant_ids: list[str] | None = None,
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


class World:
    def __init__(self, entity, sales, gst, customer, xero_env):
        self.entity, self.sales, self.gst = entity, sales, gst
        self.customer, self.xero_env = customer, xero_env

    def invoice(self, *lines, customer=None, **fields) -> Invoice:
        lines = lines or (LineInput(description="Beans 1kg", quantity=Decimal("2"),
                                    unit_price=Decimal("24.50")),)  # fmt: skip
        lines = [
            LineInput(**{**line.__dict__, "account_id": line.account_id or self.sales.pk,
                         "tax_rate_id": line.tax_rate_id or self.gst.pk})
            for line in lines
        ]  # fmt: skip
        invoice = invoice_create(
            entity=self.entity, customer=customer or self.customer,
            issue_date=fields.pop("issue_date", date(2026, 11, 20)), lines=lines, **fields,
        )  # fmt: skip
        return invoice_release(invoice=invoice)

    def xero_invoices(self):
        org = self.xero_env.sandbox.org(self.xero_env.nz_tenant_id)
        return list(org["invoices"].values())

    def xero_invoice(self, number):
        [found] = [i for i in self.xero_invoices() if i["InvoiceNumber"] == number]
        return found


@pytest.fixture
def world(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", base_currency="NZD",
                           invoice_prefix="NZ-INV-", credit_note_prefix="NZ-CN-")  # fmt: skip
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    xero_accounts_pull(connection=XeroConnection.objects.get())
    sales = AccountFactory(entity=entity, code="200", name="Sales", type=AccountType.REVENUE)
    gst = TaxRateFactory(entity=entity, name="15% GST on Income", rate=Decimal("15"),
                         xero_tax_type="OUTPUT2")  # fmt: skip
    customer = CustomerFactory(entity=entity, name="Harbour Cafe")
    return World(entity, sales, gst, customer, xero_env)
