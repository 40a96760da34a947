from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Customer, Entity, PaymentTermType
from core.models import GeneralSettings
from tests.billing.factories import (
    CustomerFactory,
    EntityFactory,
    InvoiceFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(UserFactory())
    return client


@pytest.fixture
def entity() -> Entity:
    return EntityFactory(name="Kiwi Coffee Roasters Ltd", code="NZ")


def customer_data(entity: Entity | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Café Mañana Ltd",
        "email": "accounts@cafe-manana.example.co.nz",
        "phone": "+64 9 555 0100",
        "tax_number": "123-456-789",
        "account_number": "NZ-C001",
        "currency": "",
        "payment_terms_type": PaymentTermType.OFFOLLOWINGMONTH,
        "payment_terms_day": "20",
        "street_line1": "12 Queen Street",
        "street_city": "Auckland",
        "street_country": "New Zealand",
    }
    if entity is not None:
        data["entity"] = entity.pk
    data.update(overrides)
    return data


def test_the_list_shows_active_customers_with_search_and_sorting(
    staff_client: Client, entity: Entity
) -> None:
    CustomerFactory(entity=entity, name="Zoë's Crêperie")
    CustomerFactory(entity=entity, name="<b>Bold</b> Beans")
    CustomerFactory(entity=entity, name="Archived Arabica", is_archived=True)

    response = staff_client.get(reverse("billing:customer_list"), {"sort": "-name"})

    assert [c.name for c in response.context["page"]] == ["Zoë's Crêperie", "<b>Bold</b> Beans"]
    page = response.content.decode()
    assert "&lt;b&gt;Bold&lt;/b&gt; Beans" in page  # escaped, never rendered as HTML
    assert "<b>Bold</b>" not in page

    response = staff_client.get(reverse("billing:customer_list"), {"q": "crêp"})
    assert [c.name for c in response.context["page"]] == ["Zoë's Crêperie"]

    response = staff_client.get(reverse("billing:customer_list"), {"archived": "archived"})
    assert [c.name for c in response.context["page"]] == ["Archived Arabica"]


def test_the_list_ignores_filter_values_it_does_not_understand(
    staff_client: Client, entity: Entity
) -> None:
    CustomerFactory(entity=entity, name="Aroha Espresso Bar")

    response = staff_client.get(
        reverse("billing:customer_list"),
        {"entity": "nonsense", "sort": "password", "page": "999"},
    )

    assert response.status_code == 200
    assert [c.name for c in response.context["page"]] == ["Aroha Espresso Bar"]


def test_creating_a_customer(staff_client: Client, entity: Entity) -> None:
    response = staff_client.post(reverse("billing:customer_create"), customer_data(entity))

    customer = Customer.objects.get()
    assert response.status_code == 302
    assert response.url == customer.get_absolute_url()
    assert customer.entity == entity
    assert customer.name == "Café Mañana Ltd"
    assert customer.currency == "NZD"  # blank means the entity's base currency
    assert (customer.payment_terms_type, customer.payment_terms_day) == ("OFFOLLOWINGMONTH", 20)


def test_a_255_character_name_is_accepted_and_256_is_refused(
    staff_client: Client, entity: Entity
) -> None:
    response = staff_client.post(
        reverse("billing:customer_create"), customer_data(entity, name="N" * 256)
    )

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == [
        "Ensure this value has at most 255 characters (it has 256)."
    ]
    assert "Ensure this value has at most 255 characters (it has 256)." in (
        response.content.decode()
    )
    assert Customer.objects.count() == 0

    staff_client.post(reverse("billing:customer_create"), customer_data(entity, name="N" * 255))
    assert Customer.objects.get().name == "N" * 255


def test_a_service_rule_shows_next_to_its_field(staff_client: Client, entity: Entity) -> None:
    response = staff_client.post(
        reverse("billing:customer_create"), customer_data(entity, currency="nzd")
    )

    assert response.context["form"].errors["currency"] == [
        "'nzd' is not a currency code: use three capital letters such as NZD."
    ]
    assert Customer.objects.count() == 0


def test_editing_a_customer(staff_client: Client, entity: Entity) -> None:
    customer = CustomerFactory(entity=entity, name="O'Reilly & Sons")
    url = reverse("billing:customer_update", args=[customer.pk])
    assert staff_client.get(url).context["form"].initial["name"] == "O'Reilly & Sons"

    response = staff_client.post(
        url, customer_data(name="O'Reilly & Daughters", currency="NZD", payment_terms_day="7")
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.name == "O'Reilly & Daughters"
    assert customer.payment_terms_day == 7
    assert customer.entity == entity


def test_editing_refuses_bad_input_and_changes_nothing(
    staff_client: Client, entity: Entity
) -> None:
    customer = CustomerFactory(entity=entity, name="O'Reilly & Sons")
    before = customer.updated_at

    response = staff_client.post(
        reverse("billing:customer_update", args=[customer.pk]),
        customer_data(name="N" * 256, currency="NZD"),
    )

    assert response.context["form"].errors["name"] == [
        "Ensure this value has at most 255 characters (it has 256)."
    ]
    customer.refresh_from_db()
    assert (customer.name, customer.updated_at) == ("O'Reilly & Sons", before)


def test_archiving_and_restoring(staff_client: Client, entity: Entity) -> None:
    customer = CustomerFactory(entity=entity)
    url = reverse("billing:customer_archive", args=[customer.pk])

    assert staff_client.get(url).status_code == 405
    customer.refresh_from_db()
    assert customer.is_archived is False

    staff_client.post(url, {"archived": "1"})
    customer.refresh_from_db()
    assert customer.is_archived is True

    staff_client.post(url, {"archived": "0"})
    customer.refresh_from_db()
    assert customer.is_archived is False


@pytest.mark.parametrize(
    ("method", "name", "needs_pk"),
    [
        ("get", "customer_list", False),
        ("get", "customer_create", False),
        ("post", "customer_create", False),
        ("get", "customer_detail", True),
        ("post", "customer_update", True),
        ("post", "customer_archive", True),
    ],
)
def test_a_non_staff_user_is_refused(
    client: Client, entity: Entity, method: str, name: str, needs_pk: bool
) -> None:
    customer = CustomerFactory(entity=entity, name="Aroha Espresso Bar")
    client.force_login(UserFactory(is_staff=False))
    url = reverse(f"billing:{name}", args=[customer.pk] if needs_pk else [])

    response = getattr(client, method)(url, customer_data(entity, name="Changed"))

    assert response.status_code == 403
    customer.refresh_from_db()
    assert (customer.name, customer.is_archived) == ("Aroha Espresso Bar", False)
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("invoice_count", [1, 60])
def test_the_detail_page_runs_a_fixed_number_of_queries(
    staff_client: Client, entity: Entity, invoice_count: int, django_assert_max_num_queries: Any
) -> None:
    customer = CustomerFactory(entity=entity)
    for day in range(invoice_count):
        InvoiceFactory(
            entity=entity,
            customer=customer,
            issue_date=date(2026, 1, 1) + timedelta(days=day),
            due_date=date(2026, 12, 31),
            total=Decimal("0.00"),
        )
    GeneralSettings.objects.get_or_create(pk=1)

    with django_assert_max_num_queries(13):
        response = staff_client.get(customer.get_absolute_url())

    assert response.status_code == 200
    assert len(response.context["recent_invoices"]) == min(invoice_count, 20)
    assert "Xero Integration" in response.content.decode()
