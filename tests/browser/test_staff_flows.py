"""The staff flows in a real browser (Chromium via Playwright) against a live BMS and the Xero
sandbox: connect, customer sync, invoice sync and a payment made in Xero, an error followed from
the banner to its fix, and the customer bulk sync's progress bar.

Run: DATABASE_URL=postgres://... BMS_TEST_REDIS_URL=redis://... pytest tests/browser
Screenshots: test-artifacts/browser/<test>/NN-<step>.png
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import Customer, Invoice, PaymentSource
from tests.billing.factories import CustomerFactory
from tests.browser.conftest import gst, run_jobs
from xero_integration.models import XeroEntityLink, XeroRecordLink

try:
    from playwright.sync_api import expect
except ImportError:  # conftest skips every test here (or fails the run in CI)
    expect = None

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from billing.models import Entity
    from tests.browser.conftest import Bms, Shots

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def _entity_row(page: Page, name: str):
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True)).first


def _messages(page: Page):
    return page.locator("ul.messages")


def _xero_panel(page: Page):
    return page.locator("section.xero-panel")


def _panel_value(page: Page, label: str):
    return (
        _xero_panel(page)
        .get_by_role("row")
        .filter(has=page.get_by_role("rowheader", name=label, exact=True))
        .get_by_role("cell")
    )


# --- 1. Connect -------------------------------------------------------------------------------


def test_connect_entities_through_the_consent_page(bms: Bms, page: Page, shot: Shots) -> None:
    sandbox = bms.xero_env.sandbox
    bms.sign_in(page)
    _nav(page, "Integrations")
    expect(page.get_by_role("heading", name="Integrations → Xero")).to_be_visible()
    shot(page, "integrations-not-connected")

    # NZ: tick only the NZ organisation, so BMS links it straight away.
    _entity_row(page, "Kiwi Coffee Roasters Ltd").get_by_role("button", name="Connect").click()
    expect(page).to_have_url(re.compile(re.escape(sandbox.url) + "/identity/connect/authorize"))
    expect(page.get_by_role("heading", name="BMS Demo wants access")).to_be_visible()
    page.get_by_label("Kiwi Coffee Roasters UK Ltd").uncheck()
    expect(page.get_by_label("Kiwi Coffee Roasters Ltd")).to_be_checked()
    shot(page, "consent-nz-only")
    page.get_by_role("button", name="Allow access").click()
    expect(page).to_have_url(bms.at("/xero/integrations/"))
    expect(_messages(page)).to_contain_text(
        "Kiwi Coffee Roasters Ltd now syncs with the Xero organisation Kiwi Coffee Roasters Ltd."
    )
    expect(_entity_row(page, "Kiwi Coffee Roasters Ltd")).to_contain_text("Connected")
    shot(page, "nz-connected")

    # UK: both organisations stay ticked, so BMS asks which one the entity uses.
    _entity_row(page, "Kiwi Coffee Roasters UK Ltd").get_by_role("button", name="Connect").click()
    expect(page.get_by_label("Kiwi Coffee Roasters Ltd")).to_be_checked()
    expect(page.get_by_label("Kiwi Coffee Roasters UK Ltd")).to_be_checked()
    shot(page, "consent-both")
    page.get_by_role("button", name="Allow access").click()
    expect(page).to_have_url(bms.at("/xero/choose/"))
    expect(
        page.get_by_role(
            "heading", name="Which organisation should Kiwi Coffee Roasters UK Ltd use?"
        )
    ).to_be_visible()
    page.get_by_label("Kiwi Coffee Roasters UK Ltd").check()
    shot(page, "choose-organisation")
    page.get_by_role("button", name="Use this organisation").click()
    expect(_messages(page)).to_contain_text(
        "Kiwi Coffee Roasters UK Ltd now syncs with the Xero organisation "
        "Kiwi Coffee Roasters UK Ltd."
    )
    expect(_entity_row(page, "Kiwi Coffee Roasters UK Ltd")).to_contain_text("Connected")
    shot(page, "both-connected")

    links = dict(XeroEntityLink.objects.values_list("entity__code", "tenant_id"))
    assert links == {"NZ": bms.xero_env.nz_tenant_id, "UK": bms.xero_env.uk_tenant_id}


# --- 2. Customer sync -------------------------------------------------------------------------


def test_customer_sync_shows_identifier_and_last_push(
    bms: Bms, nz: Entity, page: Page, shot: Shots
) -> None:
    customer = CustomerFactory(entity=nz, name="Harbour Cafe", email="accounts@harbour.example")
    bms.sign_in(page)
    _nav(page, "Customers")
    page.get_by_role("link", name="Harbour Cafe", exact=True).click()
    expect(page.get_by_role("heading", name="Harbour Cafe", level=1)).to_be_visible()
    expect(_panel_value(page, "Last Push")).to_have_text("never")
    expect(_panel_value(page, "Xero Identifier")).to_have_text("—")
    shot(page, "customer-never-synced")

    page.get_by_role("button", name="Sync Customer with Xero Contact").click()
    expect(_messages(page)).to_contain_text("Sync with Xero queued")
    shot(page, "sync-queued")
    [job] = run_jobs()
    assert (job.kind, job.state) == (JobKind.PUSH_CONTACT, JobState.SUCCEEDED)

    page.reload()
    link = XeroRecordLink.objects.get(content_type__model="customer", object_id=customer.pk)
    expect(_panel_value(page, "Xero Identifier")).to_have_text(link.xero_id)
    expect(_panel_value(page, "Last Push")).to_have_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"))
    expect(_xero_panel(page)).to_contain_text("BMS and Xero agree")
    shot(page, "customer-synced")

    # "View in Xero" opens the contact in the sandbox's UI.
    with page.context.expect_page() as opened:
        _xero_panel(page).get_by_role("link", name="View in Xero").click()
    xero_page = opened.value
    xero_page.wait_for_load_state()
    expect(xero_page.locator("body")).to_contain_text("Harbour Cafe")
    expect(xero_page.locator("body")).to_contain_text(link.xero_id)
    shot(xero_page, "contact-in-xero")


# --- 3. Invoice sync and a payment made in Xero -----------------------------------------------


def test_invoice_release_sync_and_a_payment_made_in_xero(
    bms: Bms, nz: Entity, page: Page, shot: Shots
) -> None:
    CustomerFactory(entity=nz, name="Harbour Cafe", email="accounts@harbour.example")
    bms.sign_in(page)
    _nav(page, "Customers")
    page.get_by_role("link", name="Harbour Cafe", exact=True).click()
    page.get_by_role("link", name="New invoice").click()

    # The invoice form: customer preset from the customer page, one line.
    expect(page.get_by_role("heading", name="New invoice")).to_be_visible()
    page.get_by_label("Reference").fill("PO 77")
    page.locator("#id_lines-0-description").fill("Beans 1kg")
    page.locator("#id_lines-0-quantity").fill("2")
    page.locator("#id_lines-0-unit_price").fill("24.50")
    page.locator("#id_lines-0-account").select_option(label="200 Sales")
    page.locator("#id_lines-0-tax_rate").select_option(label=str(gst(nz)))
    shot(page, "invoice-form")
    page.get_by_role("button", name="Save").click()
    expect(_messages(page)).to_contain_text("saved as a draft")
    invoice = Invoice.objects.get()
    assert invoice.total == Decimal("56.35")

    page.get_by_role("button", name="Release").click()
    expect(_messages(page)).to_contain_text(f"Invoice {invoice.number} released.")
    shot(page, "invoice-released")
    page.get_by_role("button", name="Sync Invoice with Xero Invoice").click()
    expect(_messages(page)).to_contain_text("Sync with Xero queued")
    jobs = run_jobs()
    assert {(j.kind, j.state) for j in jobs} == {
        (JobKind.PUSH_CONTACT, JobState.SUCCEEDED),
        (JobKind.PUSH_INVOICE, JobState.SUCCEEDED),
    }
    page.reload()
    link = XeroRecordLink.objects.get(content_type__model="invoice", object_id=invoice.pk)
    expect(_panel_value(page, "Xero Identifier")).to_have_text(link.xero_id)
    expect(_panel_value(page, "Last Push")).not_to_have_text("never")
    shot(page, "invoice-synced")

    # A Xero user applies the payment on the invoice's page in Xero (the sandbox UI).
    with page.context.expect_page() as opened:
        _xero_panel(page).get_by_role("link", name="View Xero Invoice").click()
    xero_page = opened.value
    expect(xero_page.get_by_role("heading", name=f"Invoice {invoice.number}")).to_be_visible()
    expect(xero_page.locator("input[name=amount]")).to_have_value("56.35")
    xero_page.locator("input[name=reference]").fill("Paid by bank transfer")
    shot(xero_page, "xero-invoice-before-payment")
    xero_page.get_by_role("button", name="Apply payment").click()
    expect(xero_page.locator("body")).to_contain_text("PAID")
    shot(xero_page, "xero-invoice-paid")

    # BMS's payments pull (hourly beat, webhook or `manage.py xero_pull_payments`) finds it.
    from xero_integration.payment_sync import payments_pull_enqueue

    payments_pull_enqueue(connection=XeroEntityLink.objects.get(entity=nz).connection)
    [pull] = run_jobs()
    assert pull.state == JobState.SUCCEEDED, pull.error_message
    page.reload()
    payments = page.get_by_role("heading", name="Payments and credits").locator("..")
    expect(payments).to_contain_text("Paid by bank transfer")
    expect(payments).to_contain_text("Pulled from Xero")
    expect(payments.get_by_role("row").filter(has_text="Amount due")).to_contain_text("0.00")
    shot(page, "payment-in-bms")
    [payment] = invoice.payments.all()
    assert (payment.amount, payment.source) == (Decimal("56.35"), PaymentSource.XERO)


# --- 4. An error, from the banner to its fix --------------------------------------------------


def test_a_failed_sync_is_followed_from_the_banner_to_its_fix(
    bms: Bms, nz: Entity, page: Page, shot: Shots
) -> None:
    customer = CustomerFactory(entity=nz, name="Harbour Cafe", email="accounts@harbour.example")
    bms.sign_in(page)
    _nav(page, "Customers")
    page.get_by_role("link", name="Harbour Cafe", exact=True).click()

    # An address BMS accepts (Django allows a bare "localhost" domain) but Xero rejects.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Email").fill("accounts@localhost")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Harbour Cafe", level=1)).to_be_visible()
    page.get_by_role("button", name="Sync Customer with Xero Contact").click()
    [job] = run_jobs()
    assert job.state == JobState.FAILED

    # The banner appears on every page; with one failure it goes straight to the record.
    _nav(page, "Invoices")
    banner = page.get_by_role("alert").filter(has_text="failed to sync with Xero")
    expect(banner).to_have_text(re.compile(r"1 record failed to sync with Xero — View errors"))
    shot(page, "banner-on-another-page")
    banner.get_by_role("link", name="View errors").click()
    expect(page).to_have_url(bms.at(customer.get_absolute_url()))
    failure = _xero_panel(page).locator("p.error")
    expect(failure).to_contain_text("Sync failed:")
    expect(failure).to_contain_text("Email address must be valid.")
    assert failure.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"  # red
    shot(page, "record-shows-error-in-red")

    # The panel links to the job, which shows the error and the way out.
    _xero_panel(page).get_by_role("link", name=f"#{job.pk}").click()
    expect(page.get_by_role("heading", name=re.compile(f"Job #{job.pk}"))).to_be_visible()
    expect(page.locator("p.error")).to_contain_text("Email address must be valid.")
    shot(page, "job-detail")

    # The fix the error names: correct the customer in BMS and sync again.
    expect(page.locator("p.error")).to_contain_text("Correct the customer in BMS and sync again.")
    page.get_by_role("row").filter(has_text="Record").get_by_role("link").click()
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Email").fill("accounts@harbour.example")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Sync Customer with Xero Contact").click()
    [retry] = run_jobs()
    assert retry.state == JobState.SUCCEEDED, retry.error_message

    page.reload()
    expect(page.get_by_role("alert").filter(has_text="failed to sync")).to_have_count(0)
    link = XeroRecordLink.objects.get(content_type__model="customer", object_id=customer.pk)
    expect(_panel_value(page, "Xero Identifier")).to_have_text(link.xero_id)
    shot(page, "fixed")
    contact = bms.xero_env.sandbox.org(bms.xero_env.nz_tenant_id)["contacts"][link.xero_id]
    assert contact["EmailAddress"] == "accounts@harbour.example"
    # The failed job is resolved by the sync that succeeded.
    page.goto(bms.at(f"/admin/jobs/{job.pk}/"))
    expect(page.locator("main")).to_contain_text(f"Superseded: job #{retry.pk}")
    shot(page, "failed-job-resolved")


def test_several_failures_link_to_the_unresolved_errors(
    bms: Bms, nz: Entity, page: Page, shot: Shots
) -> None:
    from xero_integration.contact_sync import customer_push_enqueue

    for name in ("Bad Email One", "Bad Email Two"):
        customer = CustomerFactory(entity=nz, name=name)
        Customer.objects.filter(pk=customer.pk).update(email="accounts@localhost")
        customer_push_enqueue(customer=customer)
    assert {j.state for j in run_jobs()} == {JobState.FAILED}

    bms.sign_in(page)
    banner = page.get_by_role("alert").filter(has_text="failed to sync with Xero")
    expect(banner).to_contain_text("2 records failed to sync with Xero")
    banner.get_by_role("link", name="View errors").click()
    expect(page).to_have_url(bms.at("/admin/jobs/?tab=unresolved"))
    expect(page.locator("[aria-current=page]")).to_contain_text("(2)")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Email address must be valid.")).to_have_count(2)
    shot(page, "unresolved-errors")


# --- 5. Bulk sync with the progress bar -------------------------------------------------------


def test_bulk_sync_shows_a_refreshing_progress_bar(
    bms: Bms, nz: Entity, page: Page, shot: Shots
) -> None:
    for n in range(5):
        CustomerFactory(entity=nz, name=f"Bulk Customer {n}")
    bms.sign_in(page)
    _nav(page, "Customers")
    page.get_by_role("link", name="Sync all with Xero").click()
    expect(page.get_by_role("heading", name="Sync customers with Xero")).to_be_visible()
    page.get_by_label("Entity").select_option(label="Kiwi Coffee Roasters Ltd")
    shot(page, "bulk-sync-form")
    page.get_by_role("button", name="Sync all customers of this entity").click()

    # The page reloads itself (meta refresh) while the job is unfinished: no reload from the test.
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    progress = page.locator("progress")
    expect(progress).to_have_attribute("value", "0")
    expect(page.locator("main")).to_contain_text("Queued")
    shot(page, "progress-queued")

    # A worker picks the bulk job up: it splits the customers into parts.
    [bulk] = BackgroundJob.objects.filter(kind=JobKind.BULK_CUSTOMER_SYNC)
    job_run(job_id=bulk.pk)
    expect(page.locator("main")).to_contain_text("0 / 5 done", timeout=10_000)
    expect(progress).to_have_attribute("max", "5")
    assert loads, "the progress page did not refresh itself"
    shot(page, "progress-split")

    run_jobs()
    expect(page.locator("main")).to_contain_text("5 / 5 done · 0 failed", timeout=10_000)
    expect(progress).to_have_attribute("value", "5")
    shot(page, "progress-done")
    assert XeroRecordLink.objects.filter(content_type__model="customer").count() == 5
