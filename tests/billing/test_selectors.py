from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import selectors
from billing.models import DocumentStatus, PaymentStatus
from billing.selectors import CreditNoteFilters, CustomerFilters, InvoiceFilters
from tests.billing.factories import (
    CreditNoteFactory,
    CustomerFactory,
    EntityFactory,
    InvoiceFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_entities() -> dict[str, Any]:
    nz = EntityFactory(name="Kiwi Coffee Roasters Ltd", code="NZ")
    uk = EntityFactory(name="Kiwi Coffee Roasters UK Ltd", code="UK", base_currency="GBP")
    return {
        "nz": nz,
        "uk": uk,
        "manana": CustomerFactory(entity=nz, name="Café Mañana Ltd", email="hola@manana.example"),
        "oreilly": CustomerFactory(entity=nz, name="O'Reilly & Sons", email="a@oreilly.example"),
        "zoe": CustomerFactory(entity=uk, name="Zoë's Crêperie", email="zoe@crepes.example"),
        "old": CustomerFactory(entity=uk, name="Old Beans", is_archived=True),
    }


def names(queryset: Any) -> list[str]:
    return [row.name for row in queryset]


def test_customer_list_defaults_to_active_customers_by_name(two_entities: dict[str, Any]) -> None:
    assert names(selectors.customer_list(filters=CustomerFilters())) == [
        "Café Mañana Ltd",
        "O'Reilly & Sons",
        "Zoë's Crêperie",
    ]


def test_customer_list_filters_searches_and_sorts(two_entities: dict[str, Any]) -> None:
    uk = two_entities["uk"]
    assert names(selectors.customer_list(filters=CustomerFilters(entity_id=uk.pk))) == [
        "Zoë's Crêperie"
    ]
    assert names(
        selectors.customer_list(filters=CustomerFilters(archived="all", entity_id=uk.pk))
    ) == [
        "Old Beans",
        "Zoë's Crêperie",
    ]
    assert names(selectors.customer_list(filters=CustomerFilters(search="OREILLY"))) == [
        "O'Reilly & Sons"
    ]
    assert names(selectors.customer_list(filters=CustomerFilters(search="mañana"))) == [
        "Café Mañana Ltd"
    ]
    assert names(selectors.customer_list(filters=CustomerFilters(sort="-name")))[0] == (
        "Zoë's Crêperie"
    )


def test_an_unknown_sort_falls_back_to_the_default(two_entities: dict[str, Any]) -> None:
    assert names(selectors.customer_list(filters=CustomerFilters(sort="password"))) == names(
        selectors.customer_list(filters=CustomerFilters())
    )


def test_invoice_list_filters(two_entities: dict[str, Any]) -> None:
    nz, manana, oreilly = two_entities["nz"], two_entities["manana"], two_entities["oreilly"]
    draft = InvoiceFactory(entity=nz, customer=manana, number="NZ-INV-00001", reference="PO 1")
    paid = InvoiceFactory(
        entity=nz,
        customer=oreilly,
        number="NZ-INV-00002",
        status=DocumentStatus.RELEASED,
        payment_status=PaymentStatus.PAID,
        released_at=draft.created_at,
        issue_date=date(2026, 11, 15),
        due_date=date(2026, 11, 30),
    )

    def numbers(**filters: Any) -> list[str]:
        return [i.number for i in selectors.invoice_list(filters=InvoiceFilters(**filters))]

    assert numbers() == ["NZ-INV-00002", "NZ-INV-00001"]  # newest first
    assert numbers(sort="issue_date") == ["NZ-INV-00001", "NZ-INV-00002"]
    assert numbers(status="draft") == ["NZ-INV-00001"]
    assert numbers(payment_status="paid") == ["NZ-INV-00002"]
    # A draft's payment status is "unpaid" by default, but it is not an unpaid invoice yet.
    assert numbers(payment_status="unpaid") == []
    assert numbers(search="reilly") == ["NZ-INV-00002"]
    assert numbers(search="po 1") == ["NZ-INV-00001"]
    assert numbers(search="inv-00002") == ["NZ-INV-00002"]
    assert numbers(customer_id=manana.pk) == ["NZ-INV-00001"]
    assert numbers(issue_date_from=date(2026, 11, 10)) == [paid.number]
    assert numbers(issue_date_to=date(2026, 11, 10)) == [draft.number]
    assert numbers(entity_id=two_entities["uk"].pk) == []


def test_credit_note_list_filters(two_entities: dict[str, Any]) -> None:
    zoe = two_entities["zoe"]
    note = CreditNoteFactory(entity=two_entities["uk"], customer=zoe, number="UK-CN-00001")

    found = selectors.credit_note_list(filters=CreditNoteFilters(search="crêperie"))

    assert list(found) == [note]
    assert list(selectors.credit_note_list(filters=CreditNoteFilters(status="released"))) == []


def test_counting_a_list_does_not_join_the_displayed_tables(two_entities: dict[str, Any]) -> None:
    InvoiceFactory(entity=two_entities["nz"], customer=two_entities["manana"])
    queryset = selectors.invoice_list(filters=InvoiceFilters(status="draft"))

    with CaptureQueriesContext(connection) as captured:
        assert queryset.count() == 1

    count_sql = captured.captured_queries[0]["sql"].upper()
    assert "JOIN" not in count_sql


def test_the_detail_selector_loads_lines_in_one_query(two_entities: dict[str, Any]) -> None:
    invoice = InvoiceFactory(entity=two_entities["nz"], customer=two_entities["manana"])

    with CaptureQueriesContext(connection) as captured:
        loaded = selectors.invoice_get(pk=invoice.pk)
        list(loaded.lines.all())
        list(loaded.payments.all())
        list(loaded.credit_allocations.all())
        _ = loaded.customer.name, loaded.entity.name

    assert len(captured) == 4


@pytest.mark.parametrize("small_result", [0, 1000], ids=["many-matches", "few-matches"])
@pytest.mark.parametrize("sort", ["name", "-name", "created", "-created"])
def test_every_way_of_reading_a_page_gives_the_same_rows_as_offset_paging(
    sort: str, small_result: int
) -> None:
    entity = EntityFactory()
    for name in ["Bean", "Aroha", "Crema", "Aroha", "Dunedin", "Espresso", "Flat", "Grind"]:
        CustomerFactory(entity=entity, name=name)  # "Aroha" twice: ties break on the id
    queryset = selectors.customer_list(filters=CustomerFilters(sort=sort))
    expected = list(queryset)

    pages = [list(selectors.list_page(queryset, number=number, per_page=3)) for number in (1, 2, 3)]

    assert pages[0] + pages[1] + pages[2] == expected
    assert [len(page) for page in pages] == [3, 3, 2]


def test_few_matches_are_counted_and_fetched_by_primary_key() -> None:
    entity = EntityFactory()
    for name in ["Aroha", "Bean", "Crema"]:
        CustomerFactory(entity=entity, name=name)
    queryset = selectors.customer_list(filters=CustomerFilters(search="REM"))

    with CaptureQueriesContext(connection) as captured:
        page = selectors.list_page(queryset, number=1, per_page=50)
        rows = [(customer.name, customer.entity.code) for customer in page]

    assert rows == [("Crema", entity.code)]
    assert page.paginator.count == 1
    assert len(captured) == 2  # the matching ids, then the page with its entity joined
    assert "COUNT(" not in captured.captured_queries[0]["sql"].upper()


def test_a_page_past_the_end_is_the_last_page() -> None:
    entity = EntityFactory()
    for name in ["Aroha", "Bean", "Crema"]:
        CustomerFactory(entity=entity, name=name)
    queryset = selectors.customer_list(filters=CustomerFilters())

    page = selectors.list_page(queryset, number="99", per_page=2)

    assert (page.number, [c.name for c in page]) == (2, ["Crema"])
    assert selectors.list_page(queryset, number="x", per_page=2).number == 1
