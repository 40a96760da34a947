from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.models import (
    AccountType,
    Customer,
    DocumentStatus,
    Invoice,
    InvoiceLine,
    PaymentStatus,
    PaymentTermType,
)
from billing.services import (
    LineInput,
    credit_note_allocate,
    credit_note_create,
    credit_note_release,
    customer_create,
    customer_delete,
    customer_update,
    due_date_from_terms,
    invoice_create,
    invoice_release,
    invoice_update,
    invoice_void,
    payment_record,
)
from tests.billing.factories import (
    AccountFactory,
    CustomerFactory,
    EntityFactory,
    ProductFactory,
    TaxRateFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity():
    return EntityFactory(name="Kiwi Coffee Roasters Ltd", invoice_prefix="NZ-INV-")


@pytest.fixture
def sales(entity):
    return AccountFactory(entity=entity, code="200", name="Sales", type=AccountType.REVENUE)


@pytest.fixture
def gst(entity):
    return TaxRateFactory(entity=entity, name="15% GST on Income", rate=Decimal("15"))


@pytest.fixture
def customer(entity):
    return CustomerFactory(entity=entity, name="Harbour Cafe")


def _line(sales, gst, **overrides):
    values = {
        "description": "Beans 1kg",
        "quantity": Decimal("2"),
        "unit_price": Decimal("24.50"),
        "account_id": sales.pk,
        "tax_rate_id": gst.pk,
    }
    values.update(overrides)
    return LineInput(**values)


def _invoice(entity, customer, sales, gst, **line_overrides):
    return invoice_create(
        entity=entity,
        customer=customer,
        issue_date=date(2026, 11, 2),
        lines=[_line(sales, gst, **line_overrides)],
    )


# --- due dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms_type", "day", "issue", "expected"),
    [
        (PaymentTermType.DAYSAFTERBILLDATE, 20, date(2026, 11, 2), date(2026, 11, 22)),
        (PaymentTermType.DAYSAFTERBILLMONTH, 20, date(2026, 11, 2), date(2026, 12, 20)),
        (PaymentTermType.OFCURRENTMONTH, 31, date(2026, 11, 2), date(2026, 11, 30)),
        (PaymentTermType.OFCURRENTMONTH, 1, date(2026, 11, 2), date(2026, 11, 2)),
        (PaymentTermType.OFFOLLOWINGMONTH, 20, date(2026, 12, 15), date(2027, 1, 20)),
        (PaymentTermType.OFFOLLOWINGMONTH, 31, date(2027, 1, 5), date(2027, 2, 28)),
    ],
)
def test_due_date_follows_xeros_four_term_types(terms_type, day, issue, expected):
    assert due_date_from_terms(issue_date=issue, terms_type=terms_type, terms_day=day) == expected


# --- customers ----------------------------------------------------------------------------------


def test_customer_create_defaults_currency_to_the_entitys(entity):
    customer = customer_create(entity=entity, name="  Café Mañana Ltd ")
    assert (customer.name, customer.currency) == ("Café Mañana Ltd", "NZD")


def test_customer_name_of_256_characters_is_refused_and_nothing_saved(entity):
    with pytest.raises(ValidationError) as exc:
        customer_create(entity=entity, name="x" * 256)
    assert exc.value.message_dict["name"] == [
        "Ensure this value has at most 255 characters (it has 256)."
    ]
    assert Customer.objects.count() == 0


def test_customer_name_of_255_characters_is_accepted(entity):
    assert len(customer_create(entity=entity, name="y" * 255).name) == 255


def test_customer_update_with_bad_terms_day_changes_nothing(customer):
    with pytest.raises(ValidationError) as exc:
        customer_update(
            customer=customer,
            data={"payment_terms_type": PaymentTermType.OFFOLLOWINGMONTH, "payment_terms_day": 0},
        )
    assert exc.value.message_dict["payment_terms_day"] == [
        "With terms of the current or following month, the day must be between 1 and 31."
    ]
    customer.refresh_from_db()
    assert (customer.payment_terms_type, customer.payment_terms_day) == ("DAYSAFTERBILLDATE", 20)


def test_customer_update_bad_currency(customer):
    with pytest.raises(ValidationError) as exc:
        customer_update(customer=customer, data={"currency": "nz"})
    assert exc.value.message_dict["currency"] == [
        "'nz' is not a currency code: use three capital letters such as NZD."
    ]


def test_customer_with_invoices_cannot_be_deleted(entity, customer, sales, gst):
    _invoice(entity, customer, sales, gst)
    with pytest.raises(ValidationError) as exc:
        customer_delete(customer=customer)
    assert exc.value.messages == [
        "Harbour Cafe has invoices or credit notes, so it cannot be deleted; archive it instead."
    ]
    assert Customer.objects.filter(pk=customer.pk).exists()


# --- invoices -----------------------------------------------------------------------------------


def test_invoice_create_numbers_with_the_entity_prefix_and_computes_totals(
    entity, customer, sales, gst
):
    first = _invoice(entity, customer, sales, gst)
    second = _invoice(entity, customer, sales, gst)
    assert (first.number, second.number) == ("NZ-INV-00001", "NZ-INV-00002")
    assert (first.subtotal, first.total_tax, first.total, first.amount_due) == (
        Decimal("49.00"),
        Decimal("7.35"),
        Decimal("56.35"),
        Decimal("56.35"),
    )
    assert first.due_date == date(2026, 11, 22)  # 20 days after, from the customer's terms
    assert first.status == DocumentStatus.DRAFT


def test_negative_quantity_is_refused_and_nothing_written(entity, customer, sales, gst):
    with pytest.raises(ValidationError) as exc:
        _invoice(entity, customer, sales, gst, quantity=Decimal("-1"))
    assert exc.value.message_dict["lines"] == [
        "Line 1: quantity must be greater than zero (got -1)."
    ]
    assert Invoice.objects.count() == 0
    entity.refresh_from_db()
    assert entity.next_invoice_number == 1


def test_unknown_account_is_refused(entity, customer, sales, gst):
    with pytest.raises(ValidationError) as exc:
        _invoice(entity, customer, sales, gst, account_id=987654)
    assert exc.value.message_dict["lines"] == ["Line 1: account #987654 does not exist."]
    assert Invoice.objects.count() == 0


def test_other_entitys_tax_rate_is_refused(entity, customer, sales):
    other = EntityFactory(name="Kiwi Coffee Roasters UK Ltd", base_currency="GBP")
    vat = TaxRateFactory(entity=other, name="20% (VAT on Income)", rate=Decimal("20"))
    with pytest.raises(ValidationError) as exc:
        invoice_create(
            entity=entity,
            customer=customer,
            issue_date=date(2026, 11, 2),
            lines=[LineInput(description="Beans", unit_price=Decimal("1"), account_id=sales.pk,
                             tax_rate_id=vat.pk)],
        )  # fmt: skip
    assert exc.value.message_dict["lines"] == [
        "Line 1: tax rate '20% (VAT on Income)' belongs to Kiwi Coffee Roasters UK Ltd, "
        "not to Kiwi Coffee Roasters Ltd."
    ]
    assert Invoice.objects.count() == 0


def test_five_decimal_unit_price_is_refused(entity, customer, sales, gst):
    with pytest.raises(ValidationError) as exc:
        _invoice(entity, customer, sales, gst, unit_price=Decimal("1.23456"))
    assert exc.value.message_dict["lines"] == [
        "Line 1: unit price 1.23456 has more than 4 decimal places."
    ]


def test_customer_of_another_entity_is_refused(entity, sales, gst):
    stranger = CustomerFactory(name="Elsewhere Ltd")
    with pytest.raises(ValidationError) as exc:
        invoice_create(
            entity=entity, customer=stranger, issue_date=date(2026, 11, 2),
            lines=[_line(sales, gst)],
        )  # fmt: skip
    assert exc.value.message_dict["customer"] == [
        f"Elsewhere Ltd is a customer of {stranger.entity.name}, not of Kiwi Coffee Roasters Ltd."
    ]


def test_due_date_before_issue_date_is_refused(entity, customer, sales, gst):
    with pytest.raises(ValidationError) as exc:
        invoice_create(
            entity=entity, customer=customer, issue_date=date(2026, 11, 2),
            due_date=date(2026, 11, 1), lines=[_line(sales, gst)],
        )  # fmt: skip
    assert exc.value.message_dict["due_date"] == [
        "The due date 2026-11-01 is before the issue date 2026-11-02."
    ]


def test_releasing_an_empty_invoice_is_refused(entity, customer):
    invoice = invoice_create(
        entity=entity, customer=customer, issue_date=date(2026, 11, 2), lines=[]
    )
    with pytest.raises(ValidationError) as exc:
        invoice_release(invoice=invoice)
    assert exc.value.message_dict["lines"] == ["Add at least one line before releasing."]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.released_at) == (DocumentStatus.DRAFT, None)


def test_releasing_a_line_without_tax_rate_is_refused(entity, customer, sales):
    invoice = invoice_create(
        entity=entity,
        customer=customer,
        issue_date=date(2026, 11, 2),
        lines=[LineInput(description="Beans", unit_price=Decimal("5"), account_id=sales.pk)],
    )
    with pytest.raises(ValidationError) as exc:
        invoice_release(invoice=invoice)
    assert exc.value.message_dict["lines"] == ["Line 1: choose a tax rate before releasing."]
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.DRAFT


def test_releasing_for_an_archived_customer_is_refused(entity, customer, sales, gst):
    invoice = _invoice(entity, customer, sales, gst)
    Customer.objects.filter(pk=customer.pk).update(is_archived=True)
    with pytest.raises(ValidationError) as exc:
        invoice_release(invoice=invoice)
    assert exc.value.message_dict["customer"] == [
        "Harbour Cafe is archived; unarchive it before releasing."
    ]


def test_release_copies_the_products_unit_cost(entity, customer, gst):
    product = ProductFactory(entity=entity, unit_cost=Decimal("4.1234"), tax_rate=gst)
    invoice = invoice_create(
        entity=entity, customer=customer, issue_date=date(2026, 11, 2),
        lines=[LineInput(product_id=product.pk, quantity=Decimal("3"))],
    )  # fmt: skip
    assert invoice.lines.get().unit_cost is None
    released = invoice_release(invoice=invoice)
    product.unit_cost = Decimal("9.99")
    product.save()
    line = released.lines.get()
    assert (line.unit_cost, line.description, line.unit_price) == (
        Decimal("4.1234"),
        product.name,
        Decimal("10.0000"),
    )
    assert released.status == DocumentStatus.RELEASED
    assert released.version == 2


def test_released_invoice_can_be_corrected_but_not_moved_to_another_customer(
    entity, customer, sales, gst
):
    invoice = invoice_release(invoice=_invoice(entity, customer, sales, gst))
    corrected = invoice_update(
        invoice=invoice,
        data={"reference": "PO 77"},
        lines=[_line(sales, gst, quantity=Decimal("3"))],
    )
    assert (corrected.reference, corrected.total, corrected.version) == (
        "PO 77",
        Decimal("84.53"),
        3,
    )
    other = CustomerFactory(entity=entity, name="Dockside Deli")
    with pytest.raises(ValidationError) as exc:
        invoice_update(invoice=invoice, data={"customer": other})
    assert exc.value.message_dict["customer"] == [
        "Invoice NZ-INV-00001 is released, so its customer cannot be changed: void it and raise "
        "a new invoice for the other customer."
    ]
    invoice.refresh_from_db()
    assert (invoice.customer_id, invoice.version) == (customer.pk, 3)


def test_void_invoice_cannot_be_edited(entity, customer, sales, gst):
    invoice = invoice_void(invoice=invoice_release(invoice=_invoice(entity, customer, sales, gst)))
    with pytest.raises(ValidationError) as exc:
        invoice_update(invoice=invoice, data={"reference": "late"})
    assert exc.value.messages == ["Invoice NZ-INV-00001 is void and cannot be edited."]
    invoice.refresh_from_db()
    assert invoice.reference == ""


def test_payments_drive_paid_status_and_block_void(entity, customer, sales, gst):
    invoice = invoice_release(invoice=_invoice(entity, customer, sales, gst))
    payment_record(invoice=invoice, amount=Decimal("20.00"), date=date(2026, 11, 5))
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due, invoice.payment_status) == (
        Decimal("20.00"),
        Decimal("36.35"),
        PaymentStatus.PART_PAID,
    )
    with pytest.raises(ValidationError) as exc:
        invoice_void(invoice=invoice)
    assert exc.value.messages == [
        "Invoice NZ-INV-00001 has 20.00 paid or credited against it; remove the payments and "
        "credits before voiding it."
    ]
    with pytest.raises(ValidationError) as exc:
        payment_record(invoice=invoice, amount=Decimal("36.36"), date=date(2026, 11, 6))
    assert exc.value.message_dict["amount"] == ["36.36 is more than the 36.35 due on NZ-INV-00001."]
    payment_record(invoice=invoice, amount=Decimal("36.35"), date=date(2026, 11, 6))
    invoice.refresh_from_db()
    assert (invoice.amount_due, invoice.payment_status) == (Decimal("0.00"), PaymentStatus.PAID)


def test_correction_below_the_amount_paid_is_refused(entity, customer, sales, gst):
    invoice = invoice_release(invoice=_invoice(entity, customer, sales, gst))
    payment_record(invoice=invoice, amount=Decimal("50.00"), date=date(2026, 11, 5))
    with pytest.raises(ValidationError) as exc:
        invoice_update(invoice=invoice, data={}, lines=[_line(sales, gst, quantity=Decimal("1"))])
    assert exc.value.message_dict["lines"] == [
        "The new total 28.18 is less than the 50.00 already paid or credited on this invoice."
    ]
    assert list(InvoiceLine.objects.filter(invoice=invoice).values_list("quantity", flat=True)) == [
        Decimal("2.0000")
    ]


def test_credit_note_allocation_reduces_amount_due(entity, customer, sales, gst):
    invoice = invoice_release(invoice=_invoice(entity, customer, sales, gst))
    note = credit_note_release(
        credit_note=credit_note_create(
            entity=entity, customer=customer, issue_date=date(2026, 11, 3),
            lines=[_line(sales, gst, quantity=Decimal("1"))],
        )
    )  # fmt: skip
    credit_note_allocate(credit_note=note, invoice=invoice, amount=Decimal("10.00"),
                         date=date(2026, 11, 4))  # fmt: skip
    invoice.refresh_from_db()
    note.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due, invoice.payment_status) == (
        Decimal("10.00"),
        Decimal("46.35"),
        PaymentStatus.PART_PAID,
    )
    assert (note.amount_allocated, note.remaining_credit) == (Decimal("10.00"), Decimal("18.18"))
    with pytest.raises(ValidationError) as exc:
        credit_note_allocate(credit_note=note, invoice=invoice, amount=Decimal("18.19"),
                             date=date(2026, 11, 4))  # fmt: skip
    assert exc.value.message_dict["amount"] == [
        f"Only 18.18 of {entity.credit_note_prefix}00001 is left to allocate."
    ]


def test_credit_note_lines_keep_their_discount(entity, customer, sales, gst):
    # BMS accepts a discount on a credit note line; the push folds it into the unit amount
    # because Xero allows no discounts on credit notes (xero-api-notes.md §11).
    note = credit_note_create(
        entity=entity, customer=customer, issue_date=date(2026, 11, 3),
        lines=[_line(sales, gst, discount_rate=Decimal("10"))],
    )  # fmt: skip
    assert note.subtotal == Decimal("44.10")
