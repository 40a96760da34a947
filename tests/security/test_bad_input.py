"""Hostile and impossible input, through BMS's real services, views and job engine, against the
Xero sandbox. Each case ends with one specific recorded error, nothing half-written in BMS or
Xero, and every page of the affected records rendering (HTML in names escaped, never a 500).
"""

from datetime import date
from decimal import Decimal
from html import escape

import pytest
import requests
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import AccountType, Customer, Invoice, InvoiceLine
from billing.services import LineInput, customer_create, customer_update, invoice_create
from tests.billing.factories import AccountFactory, TaxRateFactory
from xero_integration.contact_sync import customer_push_enqueue
from xero_integration.models import XeroConnection, XeroRecordLink
from xero_integration.services import xero_accounts_pull

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
HOSTILE_NAMES = {
    "unicode": "Café Ōtautahi — 東京 Straße",
    "emoji": "Beans ☕🫘 & Co 👩🏽‍🍳",
    "255-characters": "N" * 254 + "é",
    "quotes": 'O\'Brien "Best" Café `x` \\ ; --',
    "html": SCRIPT,
}


def _run_all() -> None:
    for _ in range(30):
        due = list(BackgroundJob.objects.filter(state=JobState.QUEUED).values_list("pk", flat=True))
        if not due:
            return
        for job_id in due:
            job_run(job_id=job_id)


def _xero_contact_names(world) -> list[str]:
    org = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)
    return [c["Name"] for c in org["contacts"].values()]


def _xero_invoice_numbers(world) -> list[str]:
    return sorted(i["InvoiceNumber"] for i in world.xero_invoices())


def _pages_render(client: Client, urls: list[str]) -> list[str]:
    """Every page answers 200; returns their HTML."""
    pages = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        pages.append(response.content.decode())
    return pages


def _job_pages(job: BackgroundJob) -> list[str]:
    jobs = reverse("admin_jobs:job_list")
    return [
        jobs,
        f"{jobs}?tab=history",
        f"{jobs}?tab=unresolved",
        reverse("admin_jobs:job_detail", args=[job.pk]),
    ]


def _invoice_pages(invoice: Invoice) -> list[str]:
    return [
        reverse("billing:invoice_list"),
        reverse("billing:invoice_detail", args=[invoice.pk]),
        reverse("billing:invoice_update", args=[invoice.pk]),
        reverse("billing:customer_detail", args=[invoice.customer_id]),
    ]


def _failed_push(invoice: Invoice) -> BackgroundJob:
    job = BackgroundJob.objects.get(kind=JobKind.PUSH_INVOICE, target_object_id=invoice.pk)
    assert job.state == JobState.FAILED, (job.state, job.error_message)
    return job


def _assert_nothing_in_xero(world, invoice: Invoice, numbers_before: list[str]) -> None:
    assert _xero_invoice_numbers(world) == numbers_before
    assert not XeroRecordLink.objects.filter(
        content_type__model="invoice", object_id=invoice.pk
    ).exists()


@pytest.fixture
def synced_world(world):
    """The world with its customer's contact already in Xero."""
    customer_push_enqueue(customer=world.customer)
    _run_all()
    return world


# --- Hostile names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_a_hostile_customer_name_round_trips_to_xero_and_renders_escaped(world, client, name):
    customer = customer_create(entity=world.entity, name=name)
    assert Customer.objects.get(pk=customer.pk).name == name
    customer_push_enqueue(customer=customer)
    invoice = world.invoice(
        LineInput(description=f"Line for {name}", unit_price=Decimal("10")), customer=customer
    )
    _run_all()
    contact_id = XeroRecordLink.objects.get(
        content_type__model="customer", object_id=customer.pk
    ).xero_id
    org = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)
    assert org["contacts"][contact_id]["Name"] == name
    pushed = world.xero_invoice(invoice.number)
    assert contact_id in str(pushed)
    assert pushed["LineItems"][0]["Description"] == f"Line for {name}"
    job = BackgroundJob.objects.get(kind=JobKind.PUSH_CONTACT, target_object_id=customer.pk)
    assert job.state == JobState.SUCCEEDED, job.error_message
    pages = _pages_render(
        client,
        [
            reverse("billing:customer_list"),
            f"{reverse('billing:customer_list')}?q={name[:40]}",
            reverse("billing:customer_detail", args=[customer.pk]),
            reverse("billing:customer_update", args=[customer.pk]),
            *_invoice_pages(invoice),
            *_job_pages(job),
        ],
    )
    for html in pages:
        assert SCRIPT not in html
    if name == SCRIPT:
        detail = pages[2]
        assert escape(SCRIPT) in detail or "&lt;script&gt;alert(1)&lt;/script&gt;" in detail


def test_a_256_character_name_is_refused_and_nothing_is_saved(world, client):
    before = Customer.objects.count()
    with pytest.raises(ValidationError) as refused:
        customer_create(entity=world.entity, name="N" * 256)
    assert refused.value.message_dict == {
        "name": ["Ensure this value has at most 255 characters (it has 256)."]
    }
    # The same through the form: the page shows the message, no 500, nothing saved.
    response = client.post(
        f"{reverse('billing:customer_create')}?entity={world.entity.pk}",
        {"entity": world.entity.pk, "name": "N" * 256, "currency": "NZD"},
    )
    assert response.status_code == 200
    assert "Ensure this value has at most 255 characters (it has 256)." in response.content.decode()
    assert Customer.objects.count() == before
    assert not BackgroundJob.objects.filter(kind=JobKind.PUSH_CONTACT).exists()


def test_renaming_a_synced_customer_to_256_characters_is_refused_and_xero_keeps_the_name(
    synced_world,
):
    world = synced_world
    with pytest.raises(ValidationError) as refused:
        customer_update(customer=world.customer, data={"name": "N" * 256})
    assert refused.value.message_dict == {
        "name": ["Ensure this value has at most 255 characters (it has 256)."]
    }
    assert Customer.objects.get(pk=world.customer.pk).name == "Harbour Cafe"
    assert "Harbour Cafe" in _xero_contact_names(world)
    assert not BackgroundJob.objects.filter(state=JobState.QUEUED).exists()


# --- Impossible lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_price", "message"),
    [
        ("2", "24.12345", "Line 1: unit price 24.12345 has more than 4 decimal places."),
        ("-1", "24.50", "Line 1: quantity must be greater than zero (got -1)."),
        ("0", "24.50", "Line 1: quantity must be greater than zero (got 0)."),
        ("1.00001", "24.50", "Line 1: quantity 1.00001 has more than 4 decimal places."),
        ("1", "-5", "Line 1: unit price cannot be negative (got -5)."),
    ],
    ids=[
        "5-decimal-price",
        "negative-quantity",
        "zero-quantity",
        "5-decimal-quantity",
        "negative-price",
    ],
)
def test_an_impossible_line_is_refused_and_nothing_is_half_written(
    world, client, quantity, unit_price, message
):
    numbers_before = _xero_invoice_numbers(world)
    counts = (Invoice.objects.count(), InvoiceLine.objects.count(), BackgroundJob.objects.count())
    line = LineInput(
        description="Beans", quantity=Decimal(quantity), unit_price=Decimal(unit_price)
    )
    with pytest.raises(ValidationError) as refused:
        world.invoice(line)
    assert refused.value.message_dict == {"lines": [message]}
    assert (
        Invoice.objects.count(),
        InvoiceLine.objects.count(),
        BackgroundJob.objects.count(),
    ) == counts
    # The refused invoice did not use up a number.
    assert world.invoice().number == "NZ-INV-00001"
    _run_all()
    assert _xero_invoice_numbers(world) == [*numbers_before, "NZ-INV-00001"]
    _pages_render(client, [reverse("billing:invoice_list"), reverse("billing:invoice_create")])


def test_an_impossible_line_through_the_invoice_form_shows_the_message(world, client):
    before = Invoice.objects.count()
    response = client.post(
        f"{reverse('billing:invoice_create')}?entity={world.entity.pk}",
        {
            "entity": world.entity.pk,
            "customer": world.customer.pk,
            "issue_date": "2026-11-20",
            "currency": "NZD",
            "line_amount_type": "Exclusive",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-MIN_NUM_FORMS": "0",
            "lines-MAX_NUM_FORMS": "1000",
            "lines-0-description": SCRIPT,
            "lines-0-quantity": "-1",
            "lines-0-unit_price": "24.12345",
            "lines-0-account": world.sales.pk,
            "lines-0-tax_rate": world.gst.pk,
        },
    )
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert SCRIPT not in html
    assert Invoice.objects.count() == before


# --- Xero-side refusals -------------------------------------------------------------------------


def test_an_archived_xero_contact_fails_the_invoice_push_with_its_reason(synced_world, client):
    world = synced_world
    contact_id = XeroRecordLink.objects.get(
        content_type__model="customer", object_id=world.customer.pk
    ).xero_id
    world.xero_env.sandbox.archive_contact(world.xero_env.nz_tenant_id, contact_id)
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice()
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        f"Xero refused invoice {invoice.number}: The contact Harbour Cafe is archived. Archived "
        "contacts cannot be used on transactions. Restore the contact in Xero, or use Delete "
        "Integration on the customer and sync it to create a new contact; then sync this again."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def _archive_and_edit(world) -> tuple[str, BackgroundJob]:
    contact_id = XeroRecordLink.objects.get(
        content_type__model="customer", object_id=world.customer.pk
    ).xero_id
    world.xero_env.sandbox.archive_contact(world.xero_env.nz_tenant_id, contact_id)
    customer_update(customer=world.customer, data={"email": "accounts@harbour.example"})
    customer_push_enqueue(customer=world.customer)
    _run_all()
    job = BackgroundJob.objects.filter(
        kind=JobKind.PUSH_CONTACT, target_object_id=world.customer.pk
    ).latest("pk")
    return contact_id, job


def test_an_archived_xero_contact_fails_the_contact_push_with_the_fix(synced_world, client):
    world = synced_world
    _, job = _archive_and_edit(world)
    assert job.state == JobState.FAILED
    assert job.error_message == (
        "The Xero contact for Harbour Cafe is archived in Xero. Restore it in Xero and sync "
        "again, or use Delete Integration here and sync to create a new contact."
    )
    _pages_render(
        client, [reverse("billing:customer_detail", args=[world.customer.pk]), *_job_pages(job)]
    )


def test_an_archived_xero_contact_is_left_unchanged_when_its_push_fails(synced_world):
    world = synced_world
    contact_id, job = _archive_and_edit(world)
    assert job.state == JobState.FAILED
    org = world.xero_env.sandbox.org(world.xero_env.nz_tenant_id)
    assert org["contacts"][contact_id].get("EmailAddress", "") != "accounts@harbour.example"


def test_an_archived_xero_contact_on_an_invoice_push_names_the_fix(synced_world):
    world = synced_world
    contact_id = XeroRecordLink.objects.get(
        content_type__model="customer", object_id=world.customer.pk
    ).xero_id
    world.xero_env.sandbox.archive_contact(world.xero_env.nz_tenant_id, contact_id)
    invoice = world.invoice()
    _run_all()
    assert "Restore the contact in Xero" in _failed_push(invoice).error_message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "299",
            "Account code 299 is archived in Xero — use an active account, or restore it in Xero.",
        ),
        (
            "987",
            "Account code 987 does not exist in Xero's chart of accounts — map it in Admin → "
            "Accounts.",
        ),
    ],
    ids=["archived-299", "missing-987"],
)
def test_an_account_deleted_in_xero_fails_before_anything_is_sent(world, client, code, message):
    old = AccountFactory(entity=world.entity, code=code, name="Old Sales", type=AccountType.REVENUE)
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice(
        LineInput(description="Beans", unit_price=Decimal("5"), account_id=old.pk)
    )
    start = world.xero_env.sandbox.last_seq()
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == message
    puts = [
        e
        for e in world.xero_env.sandbox.requests_log(start)
        if e["path"].endswith("/Invoices") and e["method"] in ("PUT", "POST")
    ]
    assert puts == []
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def test_a_tax_type_xero_lacks_fails_before_anything_is_sent(world, client):
    bogus = TaxRateFactory(entity=world.entity, name="GST (old)", rate=Decimal("15"),
                           xero_tax_type="OUTPUT9")  # fmt: skip
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice(LineInput(description="Beans", unit_price=Decimal("5"),
                                      tax_rate_id=bogus.pk))  # fmt: skip
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        "Tax type OUTPUT9 (“GST (old)”) does not exist in the Xero organisation — map the tax "
        "rate again in Admin → Accounts."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(
        client, [*_invoice_pages(invoice), *_job_pages(job), reverse("xero_integration:accounts")]
    )


def test_mapping_a_tax_rate_to_a_type_xero_lacks_is_refused(world, client):
    response = client.post(
        reverse("xero_integration:tax_rate_map", args=[world.gst.pk]), {"xero_tax_type": "NOPE"}
    )
    assert response.status_code == 302
    world.gst.refresh_from_db()
    assert world.gst.xero_tax_type == "OUTPUT2"
    _pages_render(client, [reverse("xero_integration:accounts")])


def test_a_tax_type_the_account_cannot_use_is_refused_by_xero_and_recorded(synced_world, client):
    world = synced_world
    purchases_gst = TaxRateFactory(entity=world.entity, name="15% GST on Expenses",
                                   rate=Decimal("15"), xero_tax_type="INPUT2")  # fmt: skip
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice(LineInput(description="Beans", unit_price=Decimal("5"),
                                      tax_rate_id=purchases_gst.pk))  # fmt: skip
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        f"Xero refused invoice {invoice.number}: The TaxType code 'INPUT2' cannot be used with "
        "account code '200'. Map the tax rate to a tax type Xero allows on that account in "
        "Admin → Accounts."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def _set_lock_date(world, value: str | None) -> None:
    reply = requests.post(
        f"{world.xero_env.sandbox.url}/__sandbox__/orgs/{world.xero_env.nz_tenant_id}/lock-date",
        json={"date": value},
        timeout=5,
    )
    assert reply.status_code == 200, reply.text


def test_a_date_before_the_pulled_lock_date_fails_before_anything_is_sent(world, client):
    _set_lock_date(world, "2026-11-30")
    xero_accounts_pull(connection=XeroConnection.objects.get())
    assert XeroConnection.objects.get().period_lock_date == date(2026, 11, 30)
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice()
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        "The date 2026-11-20 is on or before Xero's period lock date 2026-11-30: change the date, "
        "or ask your accountant to move the lock date in Xero."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def test_a_lock_date_bms_has_not_pulled_yet_is_refused_by_xero_and_recorded(synced_world, client):
    world = synced_world
    _set_lock_date(world, "2026-11-30")  # set in Xero after BMS last pulled the organisation
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice()
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        f"Xero refused invoice {invoice.number}: The document date cannot be on or before the "
        "period lock date (2026-11-30). Change the date, or ask your accountant to move the lock "
        "date in Xero."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def test_a_currency_the_organisation_lacks_is_refused_with_the_fix(synced_world, client):
    world = synced_world
    numbers_before = _xero_invoice_numbers(world)
    invoice = world.invoice(currency="EUR")
    _run_all()
    job = _failed_push(invoice)
    assert job.error_message == (
        "The Xero organisation is not subscribed to EUR: add the currency in Xero (Settings → "
        "Currencies) and pull the accounts again, or raise the document in NZD."
    )
    _assert_nothing_in_xero(world, invoice, numbers_before)
    _pages_render(client, [*_invoice_pages(invoice), *_job_pages(job)])


def test_a_currency_the_organisation_lacks_is_caught_before_anything_is_sent(synced_world):
    world = synced_world
    invoice = world.invoice(currency="EUR")
    start = world.xero_env.sandbox.last_seq()
    _run_all()
    job = _failed_push(invoice)
    sent = [
        e
        for e in world.xero_env.sandbox.requests_log(start)
        if e["path"].endswith("/Invoices") and e["method"] in ("PUT", "POST")
    ]
    assert sent == [], job.error_message
    assert "EUR" in job.error_message


def test_an_unknown_currency_code_is_refused_by_billing(world):
    before = Invoice.objects.count()
    with pytest.raises(ValidationError) as refused:
        invoice_create(
            entity=world.entity,
            customer=world.customer,
            issue_date=date(2026, 11, 20),
            currency="eur",
            lines=[LineInput(description="Beans", unit_price=Decimal("1"),
                             account_id=world.sales.pk, tax_rate_id=world.gst.pk)],
        )  # fmt: skip
    assert refused.value.message_dict == {
        "currency": ["'eur' is not a currency code: use three capital letters."]
    }
    assert Invoice.objects.count() == before
