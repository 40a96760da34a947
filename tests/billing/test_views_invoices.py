from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import (
    DocumentStatus,
    Entity,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentStatus,
)
from billing.services import LineInput
from core.models import AccountingPackage, GeneralSettings
from tests.billing.factories import (
    AccountFactory,
    CustomerFactory,
    EntityFactory,
    ProductFactory,
    TaxRateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ISSUE = date(2026, 11, 10)


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(UserFactory())
    return client


@pytest.fixture
def entity() -> Entity:
    return EntityFactory(name="Kiwi Coffee Roasters Ltd", code="NZ")


@pytest.fixture
def books(entity: Entity) -> dict[str, Any]:
    account = AccountFactory(entity=entity)
    tax_rate = TaxRateFactory(entity=entity)
    product = ProductFactory(
        entity=entity, code="BEAN-1KG", name="Espresso beans 1kg", revenue_account=account
    )
    customer = CustomerFactory(entity=entity, name="Café Mañana Ltd")
    return {"account": account, "tax_rate": tax_rate, "product": product, "customer": customer}


def line(books: dict[str, Any], **overrides: Any) -> LineInput:
    values: dict[str, Any] = {
        "description": "Espresso beans 1kg",
        "quantity": Decimal("2"),
        "unit_price": Decimal("42.50"),
        "account_id": books["account"].pk,
        "tax_rate_id": books["tax_rate"].pk,
    }
    values.update(overrides)
    return LineInput(**values)


def make_invoice(entity: Entity, books: dict[str, Any], *, lines: int = 1) -> Invoice:
    return services.invoice_create(
        entity=entity,
        customer=books["customer"],
        issue_date=ISSUE,
        lines=[line(books) for _ in range(lines)],
    )


def form_data(books: dict[str, Any], rows: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    """A POST body as the invoice form sends it: header, management form, then rows."""
    data: dict[str, Any] = {
        "customer": books["customer"].pk,
        "issue_date": ISSUE.isoformat(),
        "due_date": "",
        "line_amount_type": "Exclusive",
        "currency": "",
        "reference": "PO 42",
        "lines-TOTAL_FORMS": str(len(rows) + 1),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    data.update(header)
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"lines-{index}-{key}"] = value
    return data


def good_row(books: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    row = {
        "product": books["product"].pk,
        "description": "Espresso beans 1kg",
        "quantity": "2",
        "unit_price": "42.50",
        "discount_rate": "",
        "account": books["account"].pk,
        "tax_rate": books["tax_rate"].pk,
    }
    row.update(overrides)
    return row


# --- List ------------------------------------------------------------------------------------


def test_the_list_filters_sorts_and_pages_keeping_the_filters_in_its_links(
    staff_client: Client, entity: Entity, books: dict[str, Any], settings: Any
) -> None:
    settings.BMS_LIST_PAGE_SIZE = 2
    released = [services.invoice_release(invoice=make_invoice(entity, books)) for _ in range(3)]
    make_invoice(entity, books)  # a draft, filtered out

    response = staff_client.get(
        reverse("billing:invoice_list"), {"status": "released", "sort": "number", "page": "2"}
    )

    assert [invoice.number for invoice in response.context["page"]] == [released[2].number]
    page = response.content.decode()
    assert "Page 2 of 2 (3 invoices)" in page
    assert "?status=released&amp;sort=number&amp;page=1" in page  # first/previous keep filters
    assert "?status=released&amp;sort=-number" in page  # the sorted column flips direction


# --- Create ------------------------------------------------------------------------------------


def test_new_invoice_page_offers_five_blank_rows_and_only_the_entitys_choices(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    other = EntityFactory(name="Kiwi Coffee Roasters UK Ltd", code="UK")
    foreign_rate = TaxRateFactory(entity=other, name="20% (VAT on Income)", rate=Decimal("20"))
    CustomerFactory(entity=other, name="Zoë's Crêperie")

    response = staff_client.get(reverse("billing:invoice_create"), {"entity": entity.pk})

    assert response.status_code == 200
    formset = response.context["formset"]
    assert len(formset.forms) == 5
    tax_choices = [value for value, _ in formset.forms[0].fields["tax_rate"].choices]
    assert books["tax_rate"].pk in tax_choices
    assert foreign_rate.pk not in tax_choices
    assert list(response.context["form"].fields["customer"].queryset) == [books["customer"]]


def test_new_invoice_without_an_entity_asks_which_entity_when_there_are_several(
    staff_client: Client, entity: Entity
) -> None:
    EntityFactory(name="Kiwi Coffee Roasters UK Ltd", code="UK")

    response = staff_client.get(reverse("billing:invoice_create"))

    assert response.status_code == 200
    assert "Which entity is it for?" in response.content.decode()


def test_creating_an_invoice_skips_blank_rows_and_redirects_to_it(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    data = form_data(books, [good_row(books), good_row(books, discount_rate="10")])
    data["lines-TOTAL_FORMS"] = "5"  # three blank rows follow

    response = staff_client.post(reverse("billing:invoice_create") + f"?entity={entity.pk}", data)

    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert response.url == invoice.get_absolute_url()
    assert invoice.reference == "PO 42"
    assert invoice.status == DocumentStatus.DRAFT
    assert [line.line_amount for line in invoice.lines.order_by("position")] == [
        Decimal("85.00"),
        Decimal("76.50"),
    ]
    assert invoice.total == Decimal("185.73")  # 161.50 + 15% GST 24.23 (12.75 + 11.48)
    assert invoice.created_by is not None


@pytest.mark.parametrize(
    ("row_overrides", "header", "field", "message"),
    [
        pytest.param(
            {"quantity": "-1"},
            {},
            "lines",
            "Line 1: quantity must be greater than zero (got -1).",
            id="negative-quantity",
        ),
        pytest.param(
            {"account": "999999"},
            {},
            "account",
            "Account #999999 is not an active account of Kiwi Coffee Roasters Ltd.",
            id="unknown-account",
        ),
        pytest.param(
            {"unit_price": "1.23456"},
            {},
            "unit_price",
            "Unit prices have at most 4 decimal places.",
            id="five-decimal-unit-price",
        ),
        pytest.param(
            {},
            {"due_date": "2026-11-01"},
            "due_date",
            "The due date 2026-11-01 is before the issue date 2026-11-10.",
            id="due-before-issue",
        ),
    ],
)
def test_bad_invoice_input_shows_a_specific_error_and_creates_nothing(
    staff_client: Client,
    entity: Entity,
    books: dict[str, Any],
    row_overrides: dict[str, str],
    header: dict[str, str],
    field: str,
    message: str,
) -> None:
    data = form_data(books, [good_row(books, **row_overrides)], **header)

    response = staff_client.post(reverse("billing:invoice_create") + f"?entity={entity.pk}", data)

    assert response.status_code == 200
    if field == "lines":
        assert response.context["line_errors"] == [message]
    elif field in response.context["form"].fields:
        assert response.context["form"].errors[field] == [message]
    else:
        assert response.context["formset"].forms[0].errors[field] == [message]
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert Invoice.objects.count() == 0
    assert InvoiceLine.objects.count() == 0
    entity.refresh_from_db()
    assert entity.next_invoice_number == 1


def test_another_entitys_tax_rate_is_refused_on_the_line(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    other = EntityFactory(name="Kiwi Coffee Roasters UK Ltd", code="UK")
    foreign_rate = TaxRateFactory(entity=other, name="20% (VAT on Income)", rate=Decimal("20"))
    data = form_data(books, [good_row(books, tax_rate=str(foreign_rate.pk))])

    response = staff_client.post(reverse("billing:invoice_create") + f"?entity={entity.pk}", data)

    assert response.context["formset"].forms[0].errors["tax_rate"] == [
        f"Tax rate #{foreign_rate.pk} is not an active tax rate of Kiwi Coffee Roasters Ltd."
    ]
    assert Invoice.objects.count() == 0


def test_the_service_still_refuses_another_entitys_tax_rate(
    entity: Entity, books: dict[str, Any]
) -> None:
    other = EntityFactory(name="Kiwi Coffee Roasters UK Ltd", code="UK")
    foreign_rate = TaxRateFactory(entity=other, name="20% (VAT on Income)", rate=Decimal("20"))

    with pytest.raises(services.ValidationError) as caught:
        services.invoice_create(
            entity=entity,
            customer=books["customer"],
            issue_date=ISSUE,
            lines=[line(books, tax_rate_id=foreign_rate.pk)],
        )

    assert caught.value.message_dict == {
        "lines": [
            "Line 1: tax rate '20% (VAT on Income)' belongs to Kiwi Coffee Roasters UK Ltd, "
            "not to Kiwi Coffee Roasters Ltd."
        ]
    }
    assert Invoice.objects.count() == 0


# --- Edit --------------------------------------------------------------------------------------


def test_editing_a_draft_replaces_its_lines(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = make_invoice(entity, books, lines=2)
    response = staff_client.get(reverse("billing:invoice_update", args=[invoice.pk]))
    assert len(response.context["formset"].forms) == 2 + 5
    data = form_data(
        books,
        [good_row(books, quantity="3"), good_row(books, DELETE="on")],
        reference="PO 43",
    )
    data["lines-INITIAL_FORMS"] = "2"

    response = staff_client.post(reverse("billing:invoice_update", args=[invoice.pk]), data)

    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.reference == "PO 43"
    assert list(invoice.lines.values_list("quantity", flat=True)) == [Decimal("3")]
    assert invoice.subtotal == Decimal("127.50")


def test_a_released_invoices_customer_cannot_be_changed(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = services.invoice_release(invoice=make_invoice(entity, books))
    other_customer = CustomerFactory(entity=entity, name="O'Reilly & Sons")
    data = form_data(books, [good_row(books)], customer=other_customer.pk)
    data["lines-INITIAL_FORMS"] = "1"

    response = staff_client.post(reverse("billing:invoice_update", args=[invoice.pk]), data)

    assert response.status_code == 200
    assert response.context["form"].errors["customer"] == [
        f"Invoice {invoice.number} is released, so its customer cannot be changed: void it and "
        "raise a new invoice for the other customer."
    ]
    before_version = invoice.version
    invoice.refresh_from_db()
    assert invoice.customer == books["customer"]
    assert invoice.version == before_version


def test_a_void_invoice_cannot_be_edited(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = services.invoice_void(invoice=make_invoice(entity, books))

    response = staff_client.get(reverse("billing:invoice_update", args=[invoice.pk]), follow=True)

    assert f"Invoice {invoice.number} is void and cannot be edited." in response.content.decode()


# --- Release, void, payments -------------------------------------------------------------------


def test_releasing_an_empty_invoice_is_refused_and_changes_nothing(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = make_invoice(entity, books, lines=0)

    response = staff_client.post(reverse("billing:invoice_release", args=[invoice.pk]), follow=True)

    assert "Add at least one line before releasing." in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.DRAFT
    assert invoice.released_at is None
    assert invoice.version == 1


def test_releasing_a_draft(staff_client: Client, entity: Entity, books: dict[str, Any]) -> None:
    invoice = make_invoice(entity, books)

    response = staff_client.post(reverse("billing:invoice_release", args=[invoice.pk]))

    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.RELEASED
    assert invoice.released_at is not None


def test_voiding_a_paid_invoice_is_refused(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = services.invoice_release(invoice=make_invoice(entity, books))
    services.payment_record(invoice=invoice, amount=Decimal("10.00"), date=ISSUE)

    response = staff_client.post(reverse("billing:invoice_void", args=[invoice.pk]), follow=True)

    assert (
        f"Invoice {invoice.number} has 10.00 paid or credited against it; remove the payments "
        "and credits before voiding it."
    ) in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.RELEASED


def test_recording_a_payment(staff_client: Client, entity: Entity, books: dict[str, Any]) -> None:
    invoice = services.invoice_release(invoice=make_invoice(entity, books))

    response = staff_client.post(
        reverse("billing:invoice_payment_create", args=[invoice.pk]),
        {"amount": "50.00", "date": "2026-11-12", "reference": "DD 881", "method": "cheque"},
    )

    assert response.status_code == 302
    payment = Payment.objects.get()
    assert (payment.amount, payment.reference, payment.method) == (
        Decimal("50.00"),
        "DD 881",
        "cheque",
    )
    invoice.refresh_from_db()
    assert invoice.payment_status == PaymentStatus.PART_PAID
    assert invoice.amount_due == Decimal("47.75")


def test_paying_more_than_is_due_is_refused_next_to_the_amount(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = services.invoice_release(invoice=make_invoice(entity, books))

    response = staff_client.post(
        reverse("billing:invoice_payment_create", args=[invoice.pk]),
        {"amount": "500.00", "date": "2026-11-12", "reference": "", "method": "transfer"},
    )

    assert response.context["form"].errors["amount"] == [
        f"500.00 is more than the 97.75 due on {invoice.number}."
    ]
    assert Payment.objects.count() == 0


def test_a_draft_invoice_cannot_be_paid(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = make_invoice(entity, books)

    response = staff_client.post(
        reverse("billing:invoice_payment_create", args=[invoice.pk]),
        {"amount": "5.00", "date": "2026-11-12", "reference": "", "method": "transfer"},
    )

    assert response.context["form"].non_field_errors() == [
        f"Invoice {invoice.number} is draft; only a released invoice can be paid."
    ]
    assert Payment.objects.count() == 0


# --- Methods, permissions, CSRF ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["invoice_release", "invoice_void"])
def test_state_changes_refuse_get(
    staff_client: Client, entity: Entity, books: dict[str, Any], name: str
) -> None:
    invoice = make_invoice(entity, books)

    response = staff_client.get(reverse(f"billing:{name}", args=[invoice.pk]))

    assert response.status_code == 405
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.DRAFT


def test_state_changes_need_the_csrf_token(entity: Entity, books: dict[str, Any]) -> None:
    invoice = make_invoice(entity, books)
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory())

    response = client.post(reverse("billing:invoice_release", args=[invoice.pk]))

    assert response.status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.DRAFT


@pytest.mark.parametrize(
    ("method", "name", "needs_pk"),
    [
        ("get", "invoice_list", False),
        ("get", "invoice_create", False),
        ("get", "invoice_detail", True),
        ("get", "invoice_update", True),
        ("post", "invoice_update", True),
        ("post", "invoice_release", True),
        ("post", "invoice_void", True),
        ("post", "invoice_payment_create", True),
    ],
)
def test_a_non_staff_user_is_refused(
    client: Client, entity: Entity, books: dict[str, Any], method: str, name: str, needs_pk: bool
) -> None:
    invoice = make_invoice(entity, books)
    client.force_login(UserFactory(is_staff=False))
    url = reverse(f"billing:{name}", args=[invoice.pk] if needs_pk else [])

    response = getattr(client, method)(url, form_data(books, [good_row(books)]))

    assert response.status_code == 403
    invoice.refresh_from_db()
    assert (invoice.status, invoice.version, invoice.reference) == (DocumentStatus.DRAFT, 1, "")
    assert Invoice.objects.count() == 1


def test_an_anonymous_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(reverse("billing:invoice_list"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- Detail page -------------------------------------------------------------------------------


# Session, user, invoice (with entity, customer, creator), lines (with product, account, tax
# rate), payments, credit allocations, then the navigation's admin-group and settings lookups.
DETAIL_QUERY_BOUND = 16


@pytest.mark.parametrize("line_count", [1, 60])
def test_the_detail_page_runs_a_fixed_number_of_queries(
    staff_client: Client,
    entity: Entity,
    books: dict[str, Any],
    line_count: int,
    django_assert_max_num_queries: Any,
) -> None:
    invoice = services.invoice_release(invoice=make_invoice(entity, books, lines=line_count))
    services.payment_record(invoice=invoice, amount=Decimal("1.00"), date=ISSUE)
    GeneralSettings.objects.get_or_create(pk=1)

    with django_assert_max_num_queries(DETAIL_QUERY_BOUND):
        response = staff_client.get(invoice.get_absolute_url())

    assert response.status_code == 200
    assert response.content.decode().count("Espresso beans 1kg") == line_count


def test_the_detail_page_marks_the_xero_panel_only_when_xero_is_the_package(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = make_invoice(entity, books)
    GeneralSettings.objects.update_or_create(
        pk=1, defaults={"accounting_package": AccountingPackage.XERO}
    )

    page = staff_client.get(invoice.get_absolute_url()).content.decode()
    assert "Xero Integration" in page
    assert "Never synced with Xero" in page

    GeneralSettings.objects.filter(pk=1).update(accounting_package=AccountingPackage.NONE)
    page = staff_client.get(invoice.get_absolute_url()).content.decode()
    assert "Xero Integration" not in page
