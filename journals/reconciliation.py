"""Reconciliation: does Xero still say what BMS says, for every record BMS synced there?

Per Xero organisation it compares synced invoices (total, amount paid, status), synced contacts
(name, identifier, archived) and posted cost-of-sales journals (total, and that each exists exactly
once). Every difference is a Drift with a link to the BMS record and to the Xero record. The job
handler turns a report with drifts into one failed RECONCILE job per organisation and run (see
jobs.py), so drift shows on the Background Jobs page like any other error and is resolved by the
next clean run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobTrigger
from admin_jobs.services import job_enqueue
from billing.models import Customer, DocumentStatus, Invoice, InvoicePushStatus
from journals.models import CostOfSalesJournal, JournalStatus
from journals.selectors import xero_contact_url, xero_invoice_url, xero_journal_url
from journals.services import GONE_XERO_STATUSES
from xero_integration.client import XeroClient
from xero_integration.models import (
    ConnectionStatus,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
)
from xero_integration.services import xero_client_for_connection

# Xero's GET by IDs takes a comma-separated list in the query string; keep URLs short.
IDS_PER_REQUEST = 50
TAG_RE = re.compile(r"\[bms-journal:(\d+)\]")
MESSAGE_DRIFTS_SHOWN = 5

T = TypeVar("T")


@dataclass(frozen=True)
class Drift:
    kind: str  # invoice, contact, journal
    record: str
    field: str
    bms: str
    xero: str
    bms_url: str
    xero_url: str

    @property
    def summary(self) -> str:
        return f"{self.record}: {self.field} is {self.bms} in BMS but {self.xero} in Xero"


@dataclass
class ReconciliationReport:
    connection_id: int
    tenant_name: str
    checked: dict[str, int] = field(default_factory=dict)
    drifts: list[Drift] = field(default_factory=list)

    @property
    def message(self) -> str:
        shown = "; ".join(d.summary for d in self.drifts[:MESSAGE_DRIFTS_SHOWN])
        more = len(self.drifts) - MESSAGE_DRIFTS_SHOWN
        return (
            f"{len(self.drifts)} difference(s) between BMS and Xero organisation "
            f"“{self.tenant_name}”: {shown}{f'; and {more} more' if more > 0 else ''}. Each one is "
            "listed below with links to both records: correct the side that is wrong (or pull "
            "the payments from Xero), then press Retry now to check again."
        )

    def as_detail(self) -> dict[str, Any]:
        return {
            "organisation": self.tenant_name,
            "checked": self.checked,
            "drifts": [asdict(d) for d in self.drifts],
        }


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _url(record: Any) -> str:
    try:
        return str(record.get_absolute_url())
    except NoReverseMatch:
        return ""


def _journal_url(journal: CostOfSalesJournal) -> str:
    try:
        return reverse("journals:detail", args=[journal.pk])
    except NoReverseMatch:
        return ""


def _links(tenant_id: str, model: type) -> dict[int, XeroRecordLink]:
    content_type = ContentType.objects.get_for_model(model)
    return {
        link.object_id: link
        for link in XeroRecordLink.objects.filter(tenant_id=tenant_id, content_type=content_type)
    }


def _expected_invoice_statuses(invoice: Invoice) -> set[str]:
    if invoice.status == DocumentStatus.VOID:
        return {"VOIDED", "DELETED"}
    if invoice.status == DocumentStatus.DRAFT:
        return {"DRAFT", "SUBMITTED"}
    if invoice.total > 0 and invoice.amount_due <= 0:
        return {"PAID"}
    if invoice.entity.invoice_push_status == InvoicePushStatus.DRAFT:
        return {"DRAFT", "SUBMITTED", "AUTHORISED"}
    return {"AUTHORISED"}


def _reconcile_invoices(
    *, client: XeroClient, tenant_id: str, report: ReconciliationReport
) -> None:
    links = _links(tenant_id, Invoice)
    invoices = Invoice.objects.select_related("entity").in_bulk(list(links))
    report.checked["invoices"] = len(invoices)
    by_xero_id = {links[pk].xero_id: invoice for pk, invoice in invoices.items()}
    seen: set[str] = set()
    for ids in _chunks(sorted(by_xero_id), IDS_PER_REQUEST):
        for record in client.invoices_get(ids=ids):
            invoice = by_xero_id.get(record.invoice_id)
            if invoice is None:
                continue
            seen.add(record.invoice_id)
            xero_url = xero_invoice_url(invoice_id=record.invoice_id, tenant_id=tenant_id)

            def drift(name: str, bms: object, xero: object, invoice: Invoice = invoice,
                      xero_url: str = xero_url) -> Drift:  # fmt: skip
                return Drift("invoice", f"Invoice {invoice.number}", name, str(bms), str(xero),
                             _url(invoice), xero_url)  # fmt: skip

            if record.total != invoice.total:
                report.drifts.append(drift("total", invoice.total, record.total))
            if record.amount_paid != invoice.amount_paid:
                report.drifts.append(drift("amount paid", invoice.amount_paid, record.amount_paid))
            expected = _expected_invoice_statuses(invoice)
            if record.status not in expected:
                report.drifts.append(
                    drift(
                        "status", f"{invoice.status} ({'/'.join(sorted(expected))})", record.status
                    )  # fmt: skip
                )
    for xero_id, invoice in by_xero_id.items():
        if xero_id not in seen:
            report.drifts.append(
                Drift("invoice", f"Invoice {invoice.number}", "existence", "synced", "not found",
                      _url(invoice), xero_invoice_url(invoice_id=xero_id, tenant_id=tenant_id))
            )  # fmt: skip


def _reconcile_contacts(
    *, client: XeroClient, tenant_id: str, report: ReconciliationReport
) -> None:
    links = _links(tenant_id, Customer)
    customers = Customer.objects.in_bulk(list(links))
    report.checked["contacts"] = len(customers)
    by_xero_id = {links[pk].xero_id: (customer, links[pk]) for pk, customer in customers.items()}
    seen: set[str] = set()
    for ids in _chunks(sorted(by_xero_id), IDS_PER_REQUEST):
        for record in client.contacts_get(ids=ids, include_archived=True):
            if record.contact_id not in by_xero_id:
                continue
            customer, link = by_xero_id[record.contact_id]
            seen.add(record.contact_id)
            xero_url = xero_contact_url(contact_id=record.contact_id, tenant_id=tenant_id)
            label = f"Customer {customer.name}"
            if record.name.strip() != customer.name.strip():
                report.drifts.append(
                    Drift(
                        "contact",
                        label,
                        "name",
                        customer.name,
                        record.name,
                        _url(customer),
                        xero_url,
                    )  # fmt: skip
                )
            # The identifier BMS gave the contact (its ContactNumber), recorded on the link.
            if link.xero_number and record.contact_number != link.xero_number:
                report.drifts.append(
                    Drift("contact", label, "identifier (contact number)", link.xero_number,
                          record.contact_number or "(none)", _url(customer), xero_url)
                )  # fmt: skip
            archived_in_xero = record.status == "ARCHIVED"
            if archived_in_xero != customer.is_archived:
                report.drifts.append(
                    Drift("contact", label, "archived", str(customer.is_archived),
                          str(archived_in_xero), _url(customer), xero_url)
                )  # fmt: skip
    for xero_id, (customer, _link) in by_xero_id.items():
        if xero_id not in seen:
            report.drifts.append(
                Drift("contact", f"Customer {customer.name}", "existence", "synced", "not found",
                      _url(customer), xero_contact_url(contact_id=xero_id, tenant_id=tenant_id))
            )  # fmt: skip


def _reconcile_journals(
    *, client: XeroClient, tenant_id: str, report: ReconciliationReport
) -> None:
    entity_ids = list(
        XeroEntityLink.objects.filter(tenant_id=tenant_id).values_list("entity_id", flat=True)
    )
    journals = {
        j.pk: j
        for j in CostOfSalesJournal.objects.select_related("entity").filter(
            entity_id__in=entity_ids
        )
    }
    posted = {pk: j for pk, j in journals.items() if j.status == JournalStatus.POSTED}
    report.checked["journals"] = len(posted)
    in_xero: dict[int, list[Any]] = defaultdict(list)
    for found in client.manual_journals_find(narration_contains="[bms-journal:"):
        match = TAG_RE.search(found.narration)
        if match and found.status.upper() not in GONE_XERO_STATUSES:
            in_xero[int(match.group(1))].append(found)
    for pk, journal in posted.items():
        record = f"{journal.label} {journal.journal_date} — {journal.entity.name}"
        xero_url = xero_journal_url(journal_id=journal.xero_journal_id, tenant_id=tenant_id)
        copies = in_xero.get(pk, [])
        if not copies:
            report.drifts.append(
                Drift("journal", record, "existence", f"posted ({journal.xero_journal_id})",
                      "not found, voided or deleted", _journal_url(journal), xero_url)
            )  # fmt: skip
            continue
        if len(copies) > 1:
            report.drifts.append(
                Drift(
                    "journal",
                    record,
                    "copies",
                    "1",
                    str(len(copies)),
                    _journal_url(journal),
                    xero_url,
                )  # fmt: skip
            )
        total = sum((line.line_amount for line in copies[0].lines if line.line_amount > 0),
                    Decimal("0.00"))  # fmt: skip
        if total != journal.total_debit:
            report.drifts.append(
                Drift(
                    "journal",
                    record,
                    "total",
                    str(journal.total_debit),
                    str(total),
                    _journal_url(journal),
                    xero_url,
                )  # fmt: skip
            )
    for pk, copies in in_xero.items():
        known = journals.get(pk)
        if known is not None and known.status in (JournalStatus.POSTED, JournalStatus.STARTED):
            continue  # compared above, or its push is still finding out (it adopts the copy)
        report.drifts.append(
            Drift("journal", f"Xero journal “{copies[0].narration}”", "existence",
                  "not posted" if known else "unknown", "posted",
                  _journal_url(known) if known else "",
                  xero_journal_url(journal_id=copies[0].manual_journal_id, tenant_id=tenant_id))
        )  # fmt: skip


def xero_reconcile(*, connection: XeroConnection) -> ReconciliationReport:
    """Compare one organisation's synced records with Xero. Read-only on both sides."""
    client = xero_client_for_connection(connection=connection)
    report = ReconciliationReport(connection_id=connection.pk, tenant_name=connection.tenant_name)
    _reconcile_invoices(client=client, tenant_id=connection.tenant_id, report=report)
    _reconcile_contacts(client=client, tenant_id=connection.tenant_id, report=report)
    _reconcile_journals(client=client, tenant_id=connection.tenant_id, report=report)
    return report


def xero_reconcile_enqueue(
    *, connection: XeroConnection, triggered_by: str, user: Any = None
) -> BackgroundJob | None:
    # The job's entity is one of the organisation's entities, so re-authorising the connection
    # resumes it like the organisation's other jobs.
    entity_link = (
        XeroEntityLink.objects.select_related("entity")
        .filter(tenant_id=connection.tenant_id)
        .order_by("entity_id")
        .first()
    )
    if entity_link is None:
        return None
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.RECONCILE,
            entity=entity_link.entity,
            target=connection,
            description=f"Reconcile BMS with Xero organisation “{connection.tenant_name}”",
            direction=JobDirection.IMPORT,
            triggered_by=triggered_by,
            user=user,
        )


def xero_reconcile_schedule() -> list[BackgroundJob]:
    jobs = []
    for connection in XeroConnection.objects.filter(status=ConnectionStatus.CONNECTED):
        job = xero_reconcile_enqueue(connection=connection, triggered_by=JobTrigger.SCHEDULE)
        if job is not None:
            jobs.append(job)
    return jobs
