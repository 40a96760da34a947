from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from billing import services
from billing.models import CreditNote, CreditNoteAllocation, DocumentStatus, Entity, Invoice
from billing.services import LineInput
from core.models import GeneralSettings
from tests.billing.factories import (
    AccountFactory,
    CustomerFactory,
    EntityFactory,
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
    return {
        "account": AccountFactory(entity=entity),
        "tax_rate": TaxRateFactory(entity=entity),
        "customer": CustomerFactory(entity=entity, name="Café Mañana Ltd"),
    }


def line(books: dict[str, Any], price: str = "20.00") -> LineInput:
    return LineInput(
        description="Returned beans",
        quantity=Decimal("1"),
        unit_price=Decimal(price),
        account_id=books["account"].pk,
        tax_rate_id=books["tax_rate"].pk,
    )


def released_invoice(entity: Entity, books: dict[str, Any], customer: Any = None) -> Invoice:
    invoice = services.invoice_create(
        entity=entity,
        customer=customer or books["customer"],
        issue_date=ISSUE,
        lines=[line(books, "100.00")],
    )
    return services.invoice_release(invoice=invoice)


def released_note(entity: Entity, books: dict[str, Any], lines: int = 1) -> CreditNote:
    note = services.credit_note_create(
        entity=entity,
        customer=books["customer"],
        issue_date=ISSUE,
        lines=[line(books) for _ in range(lines)],
    )
    return services.credit_note_release(credit_note=note)


def test_creating_a_credit_note_has_no_discount_column(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    url = reverse("billing:credit_note_create") + f"?customer={books['customer'].pk}"
    page = staff_client.get(url)
    assert "discount_rate" not in page.context["formset"].forms[0].fields

    response = staff_client.post(
        url,
        {
            "customer": books["customer"].pk,
            "issue_date": "2026-11-10",
            "line_amount_type": "Exclusive",
            "currency": "",
            "reference": "RMA 7",
            "lines-TOTAL_FORMS": "5",
            "lines-INITIAL_FORMS": "0",
            "lines-0-description": "Returned beans",
            "lines-0-quantity": "2",
            "lines-0-unit_price": "20",
            "lines-0-account": books["account"].pk,
            "lines-0-tax_rate": books["tax_rate"].pk,
        },
    )

    note = CreditNote.objects.get()
    assert response.status_code == 302
    assert response.url == note.get_absolute_url()
    assert (note.status, note.reference, note.total) == (
        DocumentStatus.DRAFT,
        "RMA 7",
        Decimal("46.00"),
    )


def test_releasing_a_credit_note(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    note = services.credit_note_create(
        entity=entity, customer=books["customer"], issue_date=ISSUE, lines=[line(books)]
    )
    url = reverse("billing:credit_note_release", args=[note.pk])
    assert staff_client.get(url).status_code == 405

    response = staff_client.post(url)

    assert response.status_code == 302
    note.refresh_from_db()
    assert note.status == DocumentStatus.RELEASED


def test_releasing_an_empty_credit_note_is_refused(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    note = services.credit_note_create(
        entity=entity, customer=books["customer"], issue_date=ISSUE, lines=[]
    )

    response = staff_client.post(
        reverse("billing:credit_note_release", args=[note.pk]), follow=True
    )

    assert "Add at least one line before releasing." in response.content.decode()
    note.refresh_from_db()
    assert note.status == DocumentStatus.DRAFT


def test_allocating_to_an_invoice_of_the_same_customer(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = released_invoice(entity, books)
    note = released_note(entity, books)

    response = staff_client.post(
        reverse("billing:credit_note_allocate", args=[note.pk]),
        {"invoice": invoice.pk, "amount": "23.00", "date": "2026-11-11"},
    )

    assert response.status_code == 302
    note.refresh_from_db()
    invoice.refresh_from_db()
    assert note.remaining_credit == Decimal("0.00")
    assert invoice.amount_credited == Decimal("23.00")
    assert invoice.amount_due == Decimal("92.00")


def test_allocating_to_another_customers_invoice_is_refused(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    other = CustomerFactory(entity=entity, name="O'Reilly & Sons")
    invoice = released_invoice(entity, books, customer=other)
    note = released_note(entity, books)

    response = staff_client.post(
        reverse("billing:credit_note_allocate", args=[note.pk]),
        {"invoice": invoice.pk, "amount": "10.00", "date": "2026-11-11"},
    )

    assert response.context["form"].errors["invoice"] == [
        "Choose a released invoice of Café Mañana Ltd in NZD that still has money due."
    ]
    assert CreditNoteAllocation.objects.count() == 0
    invoice.refresh_from_db()
    assert invoice.amount_credited == Decimal("0.00")


def test_allocating_more_than_is_left_is_refused_next_to_the_amount(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = released_invoice(entity, books)
    note = released_note(entity, books)

    response = staff_client.post(
        reverse("billing:credit_note_allocate", args=[note.pk]),
        {"invoice": invoice.pk, "amount": "50.00", "date": "2026-11-11"},
    )

    assert response.context["form"].errors["amount"] == [
        f"Only 23.00 of {note.number} is left to allocate."
    ]
    assert CreditNoteAllocation.objects.count() == 0


def test_a_non_staff_user_cannot_allocate(
    client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    invoice = released_invoice(entity, books)
    note = released_note(entity, books)
    client.force_login(UserFactory(is_staff=False))

    response = client.post(
        reverse("billing:credit_note_allocate", args=[note.pk]),
        {"invoice": invoice.pk, "amount": "10.00", "date": "2026-11-11"},
    )

    assert response.status_code == 403
    assert CreditNoteAllocation.objects.count() == 0


def test_the_list_filters_by_status(
    staff_client: Client, entity: Entity, books: dict[str, Any]
) -> None:
    released = released_note(entity, books)
    services.credit_note_create(
        entity=entity, customer=books["customer"], issue_date=ISSUE, lines=[line(books)]
    )

    response = staff_client.get(reverse("billing:credit_note_list"), {"status": "released"})

    assert list(response.context["page"]) == [released]


@pytest.mark.parametrize("line_count", [1, 60])
def test_the_detail_page_runs_a_fixed_number_of_queries(
    staff_client: Client,
    entity: Entity,
    books: dict[str, Any],
    line_count: int,
    django_assert_max_num_queries: Any,
) -> None:
    note = released_note(entity, books, lines=line_count)
    GeneralSettings.objects.get_or_create(pk=1)

    with django_assert_max_num_queries(15):
        response = staff_client.get(note.get_absolute_url())

    assert response.status_code == 200
    assert response.content.decode().count("Returned beans") == line_count
    assert "Xero Integration" in response.content.decode()
