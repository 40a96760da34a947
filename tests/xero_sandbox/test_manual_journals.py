"""Manual journals: balance, narration, line count, forbidden accounts, warnings, filters."""

from __future__ import annotations

from decimal import Decimal

import pytest
from xero_python.accounting import ManualJournal, ManualJournalLine, ManualJournals
from xero_python.exceptions import AccountingBadRequestException

from .helpers import DAY, messages


def journal(
    narration="Nightly cost of sales [ref:abc]",
    lines=(("310", "100.00"), ("640", "-100.00")),
    **kwargs,
):
    return ManualJournal(
        narration=narration,
        date=DAY,
        journal_lines=[
            ManualJournalLine(account_code=code, line_amount=Decimal(amount), description="COGS")
            for code, amount in lines
        ],
        **kwargs,
    )


def create(xero, *journals, **kwargs):
    return xero.accounting.create_manual_journals(
        xero.tenant_id, ManualJournals(manual_journals=list(journals)), **kwargs
    )


def test_balanced_journal_is_created_as_draft_notax(xero):
    created = create(xero, journal()).manual_journals[0]
    assert (created.status, created.line_amount_types.value, len(created.journal_lines)) == (
        "DRAFT",
        "NoTax",
        2,
    )
    posted = create(xero, journal(status="POSTED")).manual_journals[0]
    assert posted.status == "POSTED"


def test_unbalanced_journal_message(xero):
    with pytest.raises(AccountingBadRequestException) as exc:
        create(xero, journal(lines=(("310", "100.00"), ("640", "-10.00"))))
    assert messages(exc.value) == ["The total debits (100.00) must equal total credits (-10.00)"]


def test_narration_and_two_lines_required(xero):
    with pytest.raises(AccountingBadRequestException) as exc:
        create(xero, journal(narration="", lines=(("310", "0.00"),)))
    assert messages(exc.value) == [
        "The Narration field must be specified.",
        "A manual journal must have at least two journal lines.",
    ]


@pytest.mark.parametrize(
    "code,expected",
    [
        ("090", "Account code '090' is a bank account and cannot be used on a manual journal."),
        ("610", "Account code '610' is a system account and cannot be used on a manual journal."),
        (
            "630",
            "Account code '630' is an inventory account and cannot be used on a manual journal.",
        ),
        (
            "299",
            "Account code '299' has been archived, or has been deleted. "
            "Each line item must reference a valid account.",
        ),
    ],
)
def test_forbidden_accounts(xero, code, expected):
    with pytest.raises(AccountingBadRequestException) as exc:
        create(xero, journal(lines=(("310", "50.00"), (code, "-50.00"))))
    assert messages(exc.value) == [expected]


def test_unknown_account_line_is_removed_with_a_warning(xero):
    result = create(xero, journal(lines=(("310", "50.00"), ("640", "-50.00"), ("476", "0.00"))))
    created = result.manual_journals[0]
    assert len(created.journal_lines) == 2
    assert (
        created.warnings[0].message
        == "Account code ''476'' has been removed as it does not match a recognised account."
    )


def test_filter_by_narration_and_update(xero):
    first = create(xero, journal(narration="Batch [ref:1]")).manual_journals[0]
    create(xero, journal(narration="Batch [ref:2]"))
    api, tenant = xero.accounting, xero.tenant_id
    assert [
        j.narration
        for j in api.get_manual_journals(
            tenant, where='Narration.Contains("[ref:1]")'
        ).manual_journals
    ] == ["Batch [ref:1]"]
    assert (
        len(
            api.get_manual_journals(
                tenant, where='Narration=="Batch [ref:2]" && Status=="DRAFT"'
            ).manual_journals
        )
        == 1
    )
    posted = api.update_manual_journal(
        tenant,
        first.manual_journal_id,
        ManualJournals(manual_journals=[ManualJournal(narration="Batch [ref:1]", status="POSTED")]),
    ).manual_journals[0]
    assert posted.status == "POSTED"
    paged = api.get_manual_journals(tenant, page=1, page_size=1)
    assert paged.pagination.item_count == 2 and len(paged.manual_journals) == 1


def test_summarize_false_for_journals(xero):
    result = create(
        xero, journal(), journal(lines=(("310", "1.00"), ("640", "-2.00"))), summarize_errors=False
    )
    ok, bad = result.manual_journals
    assert ok.status_attribute_string == "OK"
    assert bad.status_attribute_string == "ERROR"
    assert (
        bad.validation_errors[0].message
        == "The total debits (1.00) must equal total credits (-2.00)"
    )
