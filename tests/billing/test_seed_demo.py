from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from billing.models import (
    Account,
    CreditNote,
    CreditNoteAllocation,
    Customer,
    DocumentStatus,
    Entity,
    Invoice,
    InvoiceLine,
    LineAmountType,
    Payment,
    PaymentStatus,
    PaymentTermType,
    Product,
    TaxRate,
)
from bms import clock
from core.models import AccountingPackage, GeneralSettings

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = [
        Entity, Account, TaxRate, Product, Customer, Invoice, InvoiceLine, Payment,
        CreditNote, CreditNoteAllocation, get_user_model(),
    ]  # fmt: skip
    return {model.__name__: model._default_manager.count() for model in models}


def test_seeding_creates_the_demo_data_once() -> None:
    # One seeded database serves every check: seeding takes a few seconds.
    output = seed()
    check_the_two_demo_organisations()
    check_customers_include_awkward_names_and_every_kind_of_terms()
    check_products_post_to_sales_cost_of_sales_and_stock()
    check_invoices_cover_every_state_in_the_last_30_days()
    check_some_credit_notes_are_released_and_allocated()
    check_demo_users_are_created_and_printed(output)
    before = row_counts()
    numbers = set(Invoice.objects.values_list("number", flat=True))

    output = seed()

    assert row_counts() == before
    assert set(Invoice.objects.values_list("number", flat=True)) == numbers
    assert "Created: nothing (already seeded)." in output


def check_the_two_demo_organisations() -> None:
    nz, uk = Entity.objects.get(code="NZ"), Entity.objects.get(code="UK")
    assert (nz.name, nz.base_currency, nz.timezone, nz.invoice_prefix, nz.credit_note_prefix) == (
        "Kiwi Coffee Roasters Ltd",
        "NZD",
        "Pacific/Auckland",
        "NZ-INV-",
        "NZ-CN-",
    )
    assert (uk.name, uk.base_currency, uk.timezone, uk.invoice_prefix, uk.credit_note_prefix) == (
        "Kiwi Coffee Roasters UK Ltd",
        "GBP",
        "Europe/London",
        "UK-INV-",
        "UK-CN-",
    )
    codes = ["090", "200", "260", "310", "400", "610", "630", "640", "800", "820", "960"]
    for entity in (nz, uk):
        assert list(entity.accounts.order_by("code").values_list("code", flat=True)) == codes
    assert nz.accounts.get(code="820").name == "GST"
    assert uk.accounts.get(code="820").name == "VAT"
    assert uk.accounts.get(code="310").type == "DIRECTCOSTS"
    assert set(nz.tax_rates.values_list("name", "rate", "xero_tax_type")) == {
        ("15% GST on Income", Decimal("15.0000"), "OUTPUT2"),
        ("No GST", Decimal("0.0000"), "NONE"),
        ("Zero Rated", Decimal("0.0000"), "ZERORATED"),
    }
    assert set(uk.tax_rates.values_list("name", "rate", "xero_tax_type")) == {
        ("20% (VAT on Income)", Decimal("20.0000"), "OUTPUT2"),
        ("5% (VAT on Income)", Decimal("5.0000"), "RROUTPUT"),
        ("Zero Rated Income", Decimal("0.0000"), "ZERORATEDOUTPUT"),
        ("No VAT", Decimal("0.0000"), "NONE"),
    }
    assert GeneralSettings.objects.get(pk=1).accounting_package == AccountingPackage.XERO


def check_customers_include_awkward_names_and_every_kind_of_terms() -> None:
    names = set(Customer.objects.values_list("name", flat=True))
    assert len(names) == 40
    assert {"Café Mañana Ltd", "Zoë's Crêperie", "O'Reilly & Sons", "<b>Bold</b> Beans"} <= names
    assert max(len(name) for name in names) == 255
    assert set(Customer.objects.values_list("payment_terms_type", flat=True)) == set(
        PaymentTermType.values
    )
    assert Customer.objects.filter(is_archived=True).count() == 6
    assert not Customer.objects.filter(email="").exists()
    assert not Customer.objects.filter(tax_number="").exists()
    for entity in Entity.objects.all():
        assert set(entity.customers.values_list("currency", flat=True)) == {entity.base_currency}


def check_products_post_to_sales_cost_of_sales_and_stock() -> None:
    assert Product.objects.count() == 20
    stock = Product.objects.filter(inventory_account__isnull=False)
    assert set(stock.values_list("revenue_account__code", "cost_of_sales_account__code",
                                 "inventory_account__code")) == {("200", "310", "640")}  # fmt: skip
    assert Product.objects.filter(code="GREEN-SAMPLE-G", sale_price=Decimal("0.0375")).exists()


def check_invoices_cover_every_state_in_the_last_30_days() -> None:
    assert Invoice.objects.count() == 150
    assert Invoice.objects.filter(reference__startswith="DEMO-").count() == 150
    statuses = set(Invoice.objects.values_list("status", flat=True))
    assert statuses == set(DocumentStatus.values)
    released = Invoice.objects.filter(status=DocumentStatus.RELEASED)
    assert set(released.values_list("payment_status", flat=True)) == set(PaymentStatus.values)
    assert set(Invoice.objects.values_list("line_amount_type", flat=True)) == set(
        LineAmountType.values
    )
    assert InvoiceLine.objects.filter(discount_rate__gt=0).exists()
    for entity in Entity.objects.all():
        today = clock.today_in(entity.timezone)
        dates = entity.invoices.values_list("issue_date", flat=True)
        assert min(dates) >= today - timedelta(days=29)
        assert max(dates) <= today
    for invoice in released.filter(payment_status=PaymentStatus.PAID):
        assert invoice.amount_due == Decimal("0.00")
    # Every payment went through payment_record, so totals agree with the rows.
    for invoice in Invoice.objects.filter(payments__isnull=False).distinct():
        paid = sum(p.amount for p in invoice.payments.all())
        assert invoice.amount_paid == paid


def check_some_credit_notes_are_released_and_allocated() -> None:
    assert CreditNote.objects.filter(status=DocumentStatus.RELEASED).count() == 7
    assert CreditNote.objects.filter(status=DocumentStatus.DRAFT).count() == 1
    assert CreditNoteAllocation.objects.count() == 6
    for allocation in CreditNoteAllocation.objects.select_related("invoice", "credit_note"):
        assert allocation.invoice.customer_id == allocation.credit_note.customer_id
        assert allocation.invoice.amount_credited >= allocation.amount


def check_demo_users_are_created_and_printed(output: str) -> None:
    users = get_user_model().objects
    admin, clerk = users.get(username="admin"), users.get(username="clerk")
    assert (admin.is_superuser, admin.is_staff, admin.check_password("admin")) == (True, True, True)
    assert (clerk.is_superuser, clerk.is_staff, clerk.check_password("clerk")) == (
        False,
        True,
        True,
    )
    assert "admin / admin" in output
    assert "clerk / clerk" in output


def test_existing_users_are_left_alone() -> None:
    get_user_model().objects.create_user(username="clerk", password="their own", is_staff=False)

    seed()

    clerk = get_user_model().objects.get(username="clerk")
    assert clerk.check_password("their own")
    assert clerk.is_staff is False
