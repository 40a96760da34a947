"""Journals against the Xero sandbox: two entities in two time zones, each connected to its own
demo organisation, with the chart of accounts pulled and stock products on 310 / 640."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import CreditNote, Customer, Entity, Invoice, Product
from billing.services import (
    LineInput,
    credit_note_create,
    credit_note_release,
    invoice_create,
    invoice_release,
)
from bms import clock
from tests.billing.factories import AdminUserFactory, CustomerFactory, EntityFactory, ProductFactory
from tests.xero_integration.conftest import XeroEnv, xero_env  # noqa: F401
from xero_integration.models import XeroConnection
from xero_integration.services import xero_accounts_pull

NZ = ZoneInfo("Pacific/Auckland")
LONDON = ZoneInfo("Europe/London")


def at(day: date, hour: int, minute: int = 0, *, tz: ZoneInfo = NZ) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def move_to(env: XeroEnv, when: datetime) -> None:
    """Move BMS's and the sandbox's clocks forward to `when`."""
    seconds = (when - clock.now()).total_seconds()
    assert seconds >= 0, f"{when} is in the past ({clock.now()})"
    env.advance(seconds)


@dataclass
class Org:
    entity: Entity
    connection: XeroConnection
    product: Product
    tenant_id: str

    def release_invoice(self, quantity: str, *, product: Product | None = None) -> Invoice:
        customer = cast(Customer, CustomerFactory(entity=self.entity))
        invoice = invoice_create(
            entity=self.entity,
            customer=customer,
            issue_date=clock.today_in(self.entity.timezone),
            lines=[LineInput(product_id=(product or self.product).pk, quantity=Decimal(quantity))],
        )
        return invoice_release(invoice=invoice)

    def release_credit_note(self, quantity: str) -> CreditNote:
        customer = cast(Customer, CustomerFactory(entity=self.entity))
        note = credit_note_create(
            entity=self.entity,
            customer=customer,
            issue_date=clock.today_in(self.entity.timezone),
            lines=[LineInput(product_id=self.product.pk, quantity=Decimal(quantity))],
        )
        return credit_note_release(credit_note=note)


def _connect(
    client: Client, env: XeroEnv, *, name: str, code: str, tz: str, currency: str, tenant: str
) -> Org:
    entity = cast(Entity, EntityFactory(name=name, code=code, timezone=tz, base_currency=currency))
    env.connect(client, entity, tenant_ids=[tenant])
    connection = XeroConnection.objects.get(tenant_id=tenant)
    xero_accounts_pull(connection=connection)
    connection.refresh_from_db()
    product = cast(
        Product,
        ProductFactory(entity=entity, unit_cost=Decimal("4.00"), sale_price=Decimal("10.00")),
    )
    return Org(entity=entity, connection=connection, product=product, tenant_id=tenant)


@pytest.fixture
def admin_client(client: Client) -> Client:
    admin = cast(User, AdminUserFactory())
    client.force_login(admin)
    return client


@pytest.fixture
def d1() -> date:
    """The first business day of each test: the day after tomorrow in Auckland. Tests start at its
    00:00 in Auckland (11:00 or 12:00 the day before in London)."""
    return clock.now().astimezone(NZ).date() + timedelta(days=2)


@pytest.fixture
def kiwi(admin_client: Client, xero_env: XeroEnv, d1: date) -> Org:  # noqa: F811
    move_to(xero_env, at(d1, 0))
    return _connect(
        admin_client,
        xero_env,
        name="Kiwi Coffee Roasters Ltd",
        code="KIWI",
        tz="Pacific/Auckland",
        currency="NZD",
        tenant=xero_env.nz_tenant_id,
    )


@pytest.fixture
def kiwi_uk(admin_client: Client, xero_env: XeroEnv, kiwi: Org) -> Org:  # noqa: F811
    return _connect(
        admin_client,
        xero_env,
        name="Kiwi Coffee Roasters UK Ltd",
        code="KIWIUK",
        tz="Europe/London",
        currency="GBP",
        tenant=xero_env.uk_tenant_id,
    )


def run_journal_jobs() -> list[BackgroundJob]:
    """Run every due journal push, oldest first, as a worker would; returns them refreshed."""
    ran = []
    for job in BackgroundJob.objects.filter(
        kind=JobKind.COST_OF_SALES_JOURNAL, state=JobState.QUEUED, not_before__lte=clock.now()
    ).order_by("not_before", "id"):
        job_run(job_id=job.pk)
        job.refresh_from_db()
        ran.append(job)
    return ran


def xero_journals(env: XeroEnv, tenant_id: str) -> list[dict]:
    """The organisation's manual journals in the order Xero created them."""
    return list(env.sandbox.org(tenant_id)["manual_journals"].values())


def xero_lines(journal: dict) -> dict[str, Decimal]:
    return {
        line["AccountCode"]: Decimal(str(line["LineAmount"])) for line in journal["JournalLines"]
    }
