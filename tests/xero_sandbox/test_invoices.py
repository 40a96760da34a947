"""ACCREC invoices: totals and rounding, account/tax rules, numbering, status machine, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest
from xero_python.accounting import (
    Contact,
    CurrencyCode,
    Invoice,
    Invoices,
    LineAmountTypes,
    LineItem,
)
from xero_python.exceptions import AccountingBadRequestException, NotFoundException

from xero_sandbox.seed import DEMO_UK_TENANT_ID

from .helpers import error_body, invoice, line, messages, new_contact, new_invoice


@pytest.fixture
def cafe(xero):
    return new_contact(xero, "Flat White Cafe")


def test_tax_is_rounded_per_line_then_summed(xero, cafe):
    # ROUND example shape: three lines whose tax rounds differently line-by-line than in total.
    created = new_invoice(xero, cafe.contact_id, line("25.33"), line("25.33"), line("25.62"))
    assert [li.tax_amount for li in created.line_items] == [
        Decimal("3.80"),
        Decimal("3.80"),
        Decimal("3.84"),
    ]
    assert (created.sub_total, created.total_tax, created.total) == (
        Decimal("76.28"),
        Decimal("11.44"),
        Decimal("87.72"),
    )
    assert created.line_amount_types == LineAmountTypes.EXCLUSIVE


def test_inclusive_notax_discount_and_unitdp4(xero, cafe):
    inclusive = new_invoice(
        xero, cafe.contact_id, line("115.00"), line_amount_types=LineAmountTypes.INCLUSIVE
    )
    assert (inclusive.sub_total, inclusive.total_tax, inclusive.total) == (
        Decimal("100.00"),
        Decimal("15.00"),
        Decimal("115.00"),
    )
    no_tax = new_invoice(
        xero, cafe.contact_id, line("50.00"), line_amount_types=LineAmountTypes.NOTAX
    )
    assert (no_tax.total_tax, no_tax.total, no_tax.line_items[0].tax_type) == (
        Decimal("0.00"),
        Decimal("50.00"),
        "NONE",
    )
    discounted = new_invoice(
        xero, cafe.contact_id, line("100.00", qty="2", discount_rate=Decimal("10"))
    )
    assert discounted.line_items[0].line_amount == Decimal("180.00")
    assert discounted.total == Decimal("207.00")
    precise = xero.accounting.create_invoices(
        xero.tenant_id,
        Invoices(invoices=[invoice(cafe.contact_id, line("1.2345", qty="3"))]),
        unitdp=4,
    ).invoices[0]
    assert precise.line_items[0].unit_amount == Decimal("1.2345")
    assert precise.line_items[0].line_amount == Decimal("3.70")
    assert xero.accounting.get_invoice(xero.tenant_id, precise.invoice_id).invoices[0].line_items[
        0
    ].unit_amount == Decimal("1.23")


def test_invoice_numbers_auto_generated_and_unique(xero, cafe):
    first = new_invoice(xero, cafe.contact_id)
    assert first.invoice_number == "INV-0001"
    new_invoice(xero, cafe.contact_id, number="BMS-100")
    with pytest.raises(AccountingBadRequestException) as exc:
        new_invoice(xero, cafe.contact_id, number="BMS-100")
    assert messages(exc.value) == ["Invoice # must be unique."]
    assert error_body(exc.value)["Elements"][0]["HasErrors"] is True


@pytest.mark.parametrize(
    "account,tax,expected",
    [
        ("999", "OUTPUT2", "Account code '999' is not a valid code for this document."),
        (
            "299",
            "OUTPUT2",
            "Account code '299' has been archived, or has been deleted. "
            "Each line item must reference a valid account.",
        ),
        ("400", "INPUT2", "Account code '400' is not a valid code for this document."),
        ("090", "NONE", "Account code '090' is not a valid code for this document."),
        (
            "200",
            "BOGUS",
            "The TaxType code BOGUS does not exist or cannot be used for this type of transaction.",
        ),
        ("200", "INPUT2", "The TaxType code 'INPUT2' cannot be used with account code '200'."),
    ],
)
def test_account_and_tax_rules(xero, cafe, account, tax, expected):
    with pytest.raises(AccountingBadRequestException) as exc:
        new_invoice(xero, cafe.contact_id, line(account=account, tax=tax))
    assert messages(exc.value) == [expected]


def test_default_tax_type_comes_from_the_account(xero, cafe):
    created = new_invoice(xero, cafe.contact_id, line(tax=None))
    assert created.line_items[0].tax_type == "OUTPUT2"


def test_unsubscribed_currency_and_archived_contact(xero, cafe, sandbox):
    with pytest.raises(AccountingBadRequestException) as exc:
        new_invoice(xero, cafe.contact_id, currency_code=CurrencyCode.EUR)
    assert messages(exc.value) == ["Organisation is not subscribed to currency EUR"]
    sandbox.archive_contact(xero.tenant_id, cafe.contact_id)
    with pytest.raises(AccountingBadRequestException) as archived:
        new_invoice(xero, cafe.contact_id)
    assert messages(archived.value) == [
        "The contact Flat White Cafe is archived. Archived contacts cannot be used on transactions."
    ]


def test_contact_by_name_is_created_when_missing(xero):
    created = xero.accounting.create_invoices(
        xero.tenant_id,
        Invoices(
            invoices=[
                Invoice(
                    type="ACCREC",
                    contact=Contact(name="Walk-in Customer"),
                    line_items=[line()],
                    status="DRAFT",
                )
            ]
        ),
    ).invoices[0]
    contacts = xero.accounting.get_contacts(xero.tenant_id).contacts
    assert [c.name for c in contacts] == ["Walk-in Customer"]
    assert created.contact.contact_id == contacts[0].contact_id


def test_due_date_required_once_authorised(xero, cafe):
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.create_invoices(
            xero.tenant_id,
            Invoices(
                invoices=[
                    Invoice(
                        type="ACCREC",
                        contact=Contact(contact_id=cafe.contact_id),
                        line_items=[line()],
                        status="AUTHORISED",
                    )
                ]
            ),
        )
    assert messages(exc.value) == ["The document DueDate field must be specified."]


def test_status_transitions(xero, cafe):
    api, tenant = xero.accounting, xero.tenant_id
    draft = new_invoice(xero, cafe.contact_id, status="DRAFT")
    submitted = api.update_invoice(
        tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="SUBMITTED")])
    ).invoices[0]
    assert submitted.status == "SUBMITTED"
    authorised = api.update_invoice(
        tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="AUTHORISED")])
    ).invoices[0]
    assert authorised.status == "AUTHORISED"
    with pytest.raises(AccountingBadRequestException) as back:
        api.update_invoice(tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="DRAFT")]))
    assert messages(back.value) == ["Invoice not of valid status for modification"]
    voided = api.update_invoice(
        tenant, draft.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")])
    ).invoices[0]
    assert (voided.status, voided.amount_due) == ("VOIDED", Decimal("0.00"))
    with pytest.raises(AccountingBadRequestException) as edit:
        api.update_invoice(
            tenant, draft.invoice_id, Invoices(invoices=[Invoice(reference="late edit")])
        )
    assert messages(edit.value) == ["Invoice not of valid status for modification"]
    deleted = api.update_invoice(
        tenant,
        new_invoice(xero, cafe.contact_id, status="DRAFT").invoice_id,
        Invoices(invoices=[Invoice(status="DELETED")]),
    ).invoices[0]
    assert deleted.status == "DELETED"
    with pytest.raises(AccountingBadRequestException) as paid:
        new_invoice(xero, cafe.contact_id, status="PAID")
    assert messages(paid.value) == ["Invoice cannot be created with status PAID."]


def test_edit_replaces_lines_and_recomputes(xero, cafe):
    created = new_invoice(xero, cafe.contact_id, line("10.00"), status="DRAFT")
    updated = xero.accounting.update_invoice(
        xero.tenant_id,
        created.invoice_id,
        Invoices(invoices=[Invoice(line_items=[line("20.00"), line("5.00")], reference="PO-7")]),
    ).invoices[0]
    assert (updated.total, updated.reference, len(updated.line_items)) == (
        Decimal("28.75"),
        "PO-7",
        2,
    )


def test_period_lock_date(xero, cafe, sandbox):
    with sandbox.state.lock:
        sandbox.org()["period_lock_date"] = datetime(2026, 10, 31, tzinfo=UTC).date()
    with pytest.raises(AccountingBadRequestException) as exc:
        new_invoice(xero, cafe.contact_id, date=datetime(2026, 10, 15, tzinfo=UTC).date())
    assert messages(exc.value) == [
        "The document date cannot be on or before the period lock date (2026-10-31)."
    ]
    assert new_invoice(xero, cafe.contact_id).status == "AUTHORISED"


def test_accpay_rejected(xero, cafe):
    bill = Invoice(
        type="ACCPAY",
        contact=Contact(contact_id=cafe.contact_id),
        line_items=[line(account="400", tax="INPUT2")],
    )
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=[bill]))
    assert "ACCPAY is not supported" in messages(exc.value)[0]


def test_summarize_errors_modes_for_invoices(xero, cafe):
    good, bad = (
        invoice(cafe.contact_id, number="OK-1"),
        invoice(cafe.contact_id, line(account="999"), number="BAD-1"),
    )
    with pytest.raises(AccountingBadRequestException):
        xero.accounting.create_invoices(xero.tenant_id, Invoices(invoices=[good, bad]))
    assert [i.invoice_number for i in xero.accounting.get_invoices(xero.tenant_id).invoices] == [
        "OK-1"
    ]
    result = xero.accounting.create_invoices(
        xero.tenant_id,
        Invoices(invoices=[invoice(cafe.contact_id, number="OK-2"), bad]),
        summarize_errors=False,
    )
    ok, failed = result.invoices
    assert (ok.status_attribute_string, ok.has_errors) == ("OK", False)
    assert (failed.status_attribute_string, failed.has_errors) == ("ERROR", True)
    assert str(failed.invoice_id) == "00000000-0000-0000-0000-000000000000"
    assert (
        failed.validation_errors[0].message
        == "Account code '999' is not a valid code for this document."
    )


def test_pagination_of_250_invoices(xero, cafe, sandbox):
    sandbox.set_limits(enabled=False)
    for batch in range(5):
        xero.accounting.create_invoices(
            xero.tenant_id,
            Invoices(
                invoices=[
                    invoice(cafe.contact_id, number=f"P-{batch * 50 + i:03d}") for i in range(50)
                ]
            ),
        )
    pages = [xero.accounting.get_invoices(xero.tenant_id, page=p, page_size=100) for p in (1, 2, 3)]
    assert [len(p.invoices) for p in pages] == [100, 100, 50]
    assert pages[0].pagination.page_count == 3 and pages[0].pagination.item_count == 250
    assert pages[0].invoices[0].line_items  # paged GETs include line items
    big = xero.accounting.get_invoices(xero.tenant_id, page=1, page_size=5000)
    assert big.pagination.page_size == 1000 and len(big.invoices) == 250
    unpaged = xero.accounting.get_invoices(xero.tenant_id)
    assert len(unpaged.invoices) == 250 and not unpaged.invoices[0].line_items


def test_filters(xero, cafe):
    other = new_contact(xero, "Other Co")
    a = new_invoice(xero, cafe.contact_id, number="F-1")
    new_invoice(xero, cafe.contact_id, number="F-2", status="DRAFT")
    c = new_invoice(xero, other.contact_id, number="F-3")
    api, tenant = xero.accounting, xero.tenant_id
    numbers = lambda r: [i.invoice_number for i in r.invoices]  # noqa: E731
    assert numbers(api.get_invoices(tenant, where='Status=="DRAFT"')) == ["F-2"]
    assert numbers(api.get_invoices(tenant, where='Type=="ACCREC" && InvoiceNumber=="F-3"')) == [
        "F-3"
    ]
    assert numbers(
        api.get_invoices(
            tenant, where=f'Status=="AUTHORISED" AND Contact.ContactID==Guid("{cafe.contact_id}")'
        )
    ) == ["F-1"]
    assert numbers(api.get_invoices(tenant, invoice_numbers=["F-1", "F-3"])) == ["F-1", "F-3"]
    assert numbers(api.get_invoices(tenant, i_ds=[a.invoice_id, c.invoice_id])) == ["F-1", "F-3"]
    assert numbers(api.get_invoices(tenant, contact_i_ds=[other.contact_id])) == ["F-3"]
    assert numbers(
        api.get_invoices(tenant, statuses=["DRAFT", "AUTHORISED"], order="InvoiceNumber DESC")
    ) == ["F-3", "F-2", "F-1"]
    assert api.get_invoice(tenant, "F-2").invoices[0].status == "DRAFT"
    with pytest.raises(NotFoundException):
        api.get_invoice(tenant, "00000000-0000-0000-0000-000000000001")


def test_if_modified_since_iso_naive_aware_and_rfc1123(xero, cafe, sandbox):
    first = new_invoice(xero, cafe.contact_id, number="M-1")
    sandbox.clock.advance(120)
    cutoff = sandbox.clock.now() - timedelta(seconds=60)
    new_invoice(xero, cafe.contact_id, number="M-2")
    api, tenant = xero.accounting, xero.tenant_id
    assert [
        i.invoice_number for i in api.get_invoices(tenant, if_modified_since=cutoff).invoices
    ] == ["M-2"]
    naive = cutoff.astimezone(UTC).replace(tzinfo=None)
    assert [
        i.invoice_number for i in api.get_invoices(tenant, if_modified_since=naive).invoices
    ] == ["M-2"]
    rfc = format_datetime(cutoff.astimezone(UTC), usegmt=True)
    _data, status, _h = api.api_client.call_api(
        api.get_resource_url("/Invoices"),
        "GET",
        header_params={
            "xero-tenant-id": tenant,
            "If-Modified-Since": rfc,
            "Accept": "application/json",
        },
        auth_settings=["OAUTH2"],
        response_type="Invoices",
        response_model_finder=api.get_model_finder(),
        _return_http_data_only=False,
    )
    assert [i.invoice_number for i in _data.invoices] == ["M-2"]
    # An update moves UpdatedDateUTC, so the older invoice shows up again.
    sandbox.clock.advance(60)
    api.update_invoice(tenant, first.invoice_id, Invoices(invoices=[Invoice(reference="touched")]))
    later = sandbox.clock.now() - timedelta(seconds=30)
    assert [
        i.invoice_number for i in api.get_invoices(tenant, if_modified_since=later).invoices
    ] == ["M-1"]


def test_uk_org_uses_its_own_rates_and_currency(xero):
    uk = DEMO_UK_TENANT_ID
    contact = xero.accounting.create_contacts(uk, {"Contacts": [{"Name": "London Deli"}]}).contacts[
        0
    ]
    created = xero.accounting.create_invoices(
        uk, Invoices(invoices=[invoice(contact.contact_id, line("10.00", tax="RROUTPUT"))])
    ).invoices[0]
    assert (created.currency_code.value, created.total_tax, created.total) == (
        "GBP",
        Decimal("0.50"),
        Decimal("10.50"),
    )


def test_description_only_line_allowed(xero, cafe):
    created = new_invoice(
        xero, cafe.contact_id, line(), LineItem(description="Thanks for your business")
    )
    assert created.total == Decimal("115.00") and len(created.line_items) == 2


def test_status_update_keeps_four_decimal_unit_amounts(xero, cafe):
    draft = xero.accounting.create_invoices(
        xero.tenant_id,
        Invoices(invoices=[invoice(cafe.contact_id, line("1.2345", qty="3"), status="DRAFT")]),
        unitdp=4,
    ).invoices[0]
    approved = xero.accounting.update_invoice(
        xero.tenant_id,
        draft.invoice_id,
        Invoices(invoices=[Invoice(status="AUTHORISED")]),
        unitdp=4,
    ).invoices[0]
    assert (approved.line_items[0].unit_amount, approved.total) == (Decimal("1.2345"), draft.total)
    plain = xero.accounting.update_invoice(
        xero.tenant_id, draft.invoice_id, Invoices(invoices=[Invoice(reference="r")])
    ).invoices[0]
    assert plain.total == draft.total


def test_voiding_inside_a_locked_period_is_refused(xero, cafe, sandbox):
    created = new_invoice(xero, cafe.contact_id)
    with sandbox.state.lock:
        sandbox.org()["period_lock_date"] = created.date
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.update_invoice(
            xero.tenant_id, created.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")])
        )
    assert messages(exc.value)[0].startswith(
        "The document date cannot be on or before the period lock date"
    )
