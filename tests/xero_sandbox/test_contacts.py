"""Contacts: uniqueness, archiving, upsert, filters, summarizeErrors."""

from __future__ import annotations

import pytest
from xero_python.accounting import Contact, Contacts
from xero_python.exceptions import AccountingBadRequestException

from .helpers import error_body, messages, new_contact

TAKEN = (
    "The contact name {} is already assigned to another contact. "
    "The contact name must be unique across all active contacts."
)


def test_duplicate_active_name_is_rejected_with_xeros_message(xero):
    new_contact(xero, "Buzz Lightyear")
    with pytest.raises(AccountingBadRequestException) as exc:
        new_contact(xero, "Buzz Lightyear")
    body = error_body(exc.value)
    assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
        10,
        "ValidationException",
        "A validation exception occurred",
    )
    assert messages(exc.value) == [TAKEN.format("Buzz Lightyear")]
    assert exc.value.reason == TAKEN.format("Buzz Lightyear")
    assert body["Elements"][0]["ContactID"] == "00000000-0000-0000-0000-000000000000"


def test_archived_contact_frees_the_name_and_is_hidden_unless_include_archived(xero, sandbox):
    old = new_contact(xero, "Roast House")
    sandbox.archive_contact(xero.tenant_id, old.contact_id)
    replacement = new_contact(xero, "Roast House")
    assert replacement.contact_id != old.contact_id
    visible = xero.accounting.get_contacts(xero.tenant_id)
    assert [c.contact_id for c in visible.contacts] == [replacement.contact_id]
    everything = xero.accounting.get_contacts(xero.tenant_id, include_archived=True)
    assert {c.contact_id for c in everything.contacts} == {old.contact_id, replacement.contact_id}
    assert (
        xero.accounting.get_contact(xero.tenant_id, old.contact_id).contacts[0].contact_status
        == "ARCHIVED"
    )


def test_archive_through_the_api_and_unarchive_checks_the_name_again(xero):
    first = new_contact(xero, "Bean There")
    xero.accounting.update_contact(
        xero.tenant_id, first.contact_id, Contacts(contacts=[Contact(contact_status="ARCHIVED")])
    )
    new_contact(xero, "Bean There")
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.update_contact(
            xero.tenant_id, first.contact_id, Contacts(contacts=[Contact(contact_status="ACTIVE")])
        )
    assert messages(exc.value) == [TAKEN.format("Bean There")]


def test_post_upserts_by_contact_number_and_updates_fields(xero):
    created = new_contact(
        xero, "Cafe One", contact_number="BMS-C-1", email_address="a@cafe.example"
    )
    result = xero.accounting.update_or_create_contacts(
        xero.tenant_id,
        Contacts(
            contacts=[
                Contact(contact_number="BMS-C-1", name="Cafe One Ltd"),
                Contact(name="Cafe Two"),
            ]
        ),
    )
    assert result.contacts[0].contact_id == created.contact_id
    assert result.contacts[0].name == "Cafe One Ltd"
    assert result.contacts[0].email_address == "a@cafe.example"
    assert len(xero.accounting.get_contacts(xero.tenant_id).contacts) == 2


def test_duplicate_contact_number_rejected(xero):
    new_contact(xero, "A", contact_number="N-1")
    with pytest.raises(AccountingBadRequestException) as exc:
        new_contact(xero, "B", contact_number="N-1")
    assert messages(exc.value) == ["The contact number N-1 is already assigned to another contact."]


def test_invalid_email_and_empty_name(xero):
    with pytest.raises(AccountingBadRequestException) as exc:
        xero.accounting.create_contacts(
            xero.tenant_id,
            Contacts(
                contacts=[
                    Contact(name="Bad Mail", email_address="not-an-email"),
                    Contact(contact_number="X-9"),
                ]
            ),
        )
    assert messages(exc.value) == ["Email address must be valid.", "Contact Name cannot be empty."]


def test_summarize_errors_default_still_creates_the_valid_elements(xero):
    new_contact(xero, "Taken")
    with pytest.raises(AccountingBadRequestException):
        xero.accounting.create_contacts(
            xero.tenant_id,
            Contacts(
                contacts=[
                    Contact(name="Fresh One"),
                    Contact(name="Taken"),
                    Contact(name="Fresh Two"),
                ]
            ),
        )
    names = sorted(c.name for c in xero.accounting.get_contacts(xero.tenant_id).contacts)
    assert names == ["Fresh One", "Fresh Two", "Taken"]  # not transactional (notes §2)


@pytest.mark.parametrize("flag", [False, "false", "False"])
def test_summarize_errors_false_returns_200_with_each_element(xero, flag):
    new_contact(xero, "Taken")
    result = xero.accounting.create_contacts(
        xero.tenant_id,
        Contacts(contacts=[Contact(name="Fine"), Contact(name="Taken")]),
        summarize_errors=flag,
    )
    ok, bad = result.contacts
    assert ok.status_attribute_string == "OK" and ok.has_validation_errors is False
    assert bad.status_attribute_string == "ERROR" and bad.has_validation_errors is True
    assert str(bad.contact_id) == "00000000-0000-0000-0000-000000000000"
    assert bad.validation_errors[0].message == TAKEN.format("Taken")


def test_where_ids_search_paging_and_get_by_number(xero):
    ids = [
        new_contact(xero, f"Shop {i:02d}", contact_number=f"S-{i:02d}").contact_id for i in range(5)
    ]
    api, tenant = xero.accounting, xero.tenant_id
    assert [c.name for c in api.get_contacts(tenant, where='Name=="Shop 03"').contacts] == [
        "Shop 03"
    ]
    assert [c.name for c in api.get_contacts(tenant, where='ContactNumber=="S-01"').contacts] == [
        "Shop 01"
    ]
    assert len(api.get_contacts(tenant, i_ds=[ids[0], ids[4]]).contacts) == 2
    assert len(api.get_contacts(tenant, search_term="shop 0").contacts) == 5
    page = api.get_contacts(tenant, page=2, page_size=2)
    assert [c.name for c in page.contacts] == ["Shop 02", "Shop 03"]
    assert (
        page.pagination.page,
        page.pagination.page_size,
        page.pagination.page_count,
        page.pagination.item_count,
    ) == (2, 2, 3, 5)
    assert api.get_contact_by_contact_number(tenant, "S-04").contacts[0].contact_id == ids[4]


def test_where_matches_names_with_accents_apostrophes_and_escaped_quotes(xero):
    from xero_python.accounting import Contact, Contacts

    names = ["Zoë's Crêperie", 'The "Best" Beans']
    xero.accounting.create_contacts(
        xero.tenant_id, Contacts(contacts=[Contact(name=n) for n in names])
    )
    found = xero.accounting.get_contacts(xero.tenant_id, where='Name=="Zoë\'s Crêperie"')
    assert [c.name for c in found.contacts] == ["Zoë's Crêperie"]
    lowered = xero.accounting.get_contacts(
        xero.tenant_id, where='Name.ToLower()=="zoë\'s crêperie"'
    )
    assert [c.name for c in lowered.contacts] == ["Zoë's Crêperie"]
    quoted = xero.accounting.get_contacts(xero.tenant_id, where='Name=="The \\"Best\\" Beans"')
    assert [c.name for c in quoted.contacts] == ['The "Best" Beans']
