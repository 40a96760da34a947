from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from billing.forms import (
    CustomerFilterForm,
    CustomerForm,
    InvoiceFilterForm,
    InvoiceLineFormSet,
    LineForm,
    apply_service_error,
    line_initial,
)
from billing.selectors import LineChoices
from billing.services import LineInput
from tests.billing.factories import EntityFactory, InvoiceLineFactory

pytestmark = pytest.mark.django_db

CHOICES = LineChoices(
    products=[(1, "BEAN-1KG Espresso beans")],
    accounts=[(10, "200 Sales")],
    tax_rates=[(20, "15% GST on Income (15%)")],
)


@pytest.fixture
def entity() -> Any:
    return EntityFactory.build(name="Kiwi Coffee Roasters Ltd")


def line_form(entity: Any, **data: str) -> LineForm:
    return LineForm(data=data, entity=entity, choices=CHOICES)


def test_a_line_becomes_a_line_input(entity: Any) -> None:
    form = line_form(
        entity,
        product="1",
        description="",
        quantity="2.5",
        unit_price="0.0375",
        discount_rate="12.5",
        account="10",
        tax_rate="20",
    )

    assert form.is_valid(), form.errors
    assert form.line_input() == LineInput(
        description="",
        quantity=Decimal("2.5"),
        unit_price=Decimal("0.0375"),
        account_id=10,
        tax_rate_id=20,
        product_id=1,
        discount_rate=Decimal("12.5"),
    )


def test_blank_price_and_discount_mean_the_products_price_and_no_discount(entity: Any) -> None:
    form = line_form(entity, product="1", quantity="1")

    assert form.is_valid(), form.errors
    line = form.line_input()
    assert (line.unit_price, line.discount_rate, line.account_id) == (None, Decimal("0"), None)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"unit_price": "1.23456"}, "unit_price", "Unit prices have at most 4 decimal places."),
        (
            {"account": "11"},
            "account",
            "Account #11 is not an active account of Kiwi Coffee Roasters Ltd.",
        ),
        (
            {"tax_rate": "21"},
            "tax_rate",
            "Tax rate #21 is not an active tax rate of Kiwi Coffee Roasters Ltd.",
        ),
        (
            {"product": "2"},
            "product",
            "Product #2 is not an active product of Kiwi Coffee Roasters Ltd.",
        ),
        ({"quantity": ""}, "quantity", "This field is required."),
        (
            {"discount_rate": "1000"},
            "discount_rate",
            "Ensure that there are no more than 3 digits before the decimal point.",
        ),
    ],
)
def test_a_line_refuses_bad_input_next_to_the_field(
    entity: Any, data: dict[str, str], field: str, message: str
) -> None:
    values = {"description": "Beans", "quantity": "1", "unit_price": "10"}
    values.update(data)

    form = line_form(entity, **values)

    assert not form.is_valid()
    assert form.errors[field] == [message]


def test_the_formset_ignores_blank_and_deleted_rows(entity: Any) -> None:
    data = {
        "lines-TOTAL_FORMS": "4",
        "lines-INITIAL_FORMS": "0",
        "lines-0-description": "Beans",
        "lines-0-quantity": "1",
        "lines-0-unit_price": "10",
        "lines-2-description": "Removed",
        "lines-2-quantity": "1",
        "lines-2-DELETE": "on",
        "lines-3-description": "Cups",
        "lines-3-quantity": "2",
    }

    formset = InvoiceLineFormSet(
        data, prefix="lines", form_kwargs={"entity": entity, "choices": CHOICES}
    )

    assert formset.is_valid(), formset.errors
    assert [line.description for line in formset.line_inputs()] == ["Beans", "Cups"]


def test_line_initial_shows_plain_numbers() -> None:
    line = InvoiceLineFactory.build(
        quantity=Decimal("250.0000"), unit_price=Decimal("0.0375"), discount_rate=Decimal("0")
    )

    (initial,) = line_initial([line])

    assert (initial["quantity"], initial["unit_price"], initial["discount_rate"]) == (
        "250",
        "0.0375",
        "",
    )


def test_service_errors_go_next_to_their_field_and_lines_errors_are_returned() -> None:
    form = CustomerForm(data={"name": "x"}, is_create=False)
    form.is_valid()

    line_errors = apply_service_error(
        form,
        ValidationError(
            {
                "currency": "'nzd' is not a currency code.",
                "lines": ["Line 1: quantity must be greater than zero (got -1)."],
                "unknown_field": "Something else.",
            }
        ),
    )

    assert line_errors == ["Line 1: quantity must be greater than zero (got -1)."]
    assert "'nzd' is not a currency code." in form.errors["currency"]
    assert form.non_field_errors() == ["Something else."]


def test_a_plain_service_error_is_a_form_error() -> None:
    form = CustomerForm(data={}, is_create=False)
    form.is_valid()

    assert apply_service_error(form, ValidationError("Invoice X is void.")) == []
    assert form.non_field_errors() == ["Invoice X is void."]


def test_filter_forms_keep_the_valid_values_and_drop_the_rest() -> None:
    form = InvoiceFilterForm(
        {"q": " cafe ", "status": "released", "issue_date_from": "not a date", "sort": "total"}
    )

    filters = form.filters()

    assert (filters.search, filters.status, filters.issue_date_from, filters.sort) == (
        "cafe",
        "released",
        None,
        "total",
    )
    assert CustomerFilterForm({"archived": "bogus"}).filters().archived == "active"
