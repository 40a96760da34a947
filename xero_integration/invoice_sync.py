"""Released BMS invoices and credit notes as Xero ACCREC invoices and ACCRECCREDIT credit notes.

Ordering: an invoice's push waits for its customer's contact push; a credit note's push waits for
the pushes of the invoices it is allocated to. Idempotency: the invoice number is Xero's unique
business key for ACCREC (xero-api-notes.md §8), so after an unknown outcome past the 6-minute
idempotency window the invoice is looked up by number before it is created again; within the
window the stored request is replayed with its own key (xero_integration/requests.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model

from admin_jobs.errors import JobError, JobSkipped, PermanentJobError, TransientJobError
from admin_jobs.handlers import JobSuccess, Outcome
from admin_jobs.models import (
    UNFINISHED_STATES,
    BackgroundJob,
    JobDirection,
    JobKind,
    JobTrigger,
)
from admin_jobs.services import JobSpec, job_enqueue, job_enqueue_many
from billing.models import CreditNote, Customer, DocumentStatus, Invoice
from bms import clock
from xero_integration import client as xero
from xero_integration.contact_sync import customer_push_spec
from xero_integration.models import (
    SyncDirection,
    SyncExclusion,
    XeroAccount,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
    XeroRequest,
    XeroTaxRate,
)
from xero_integration.requests import (
    Member,
    xero_request_is_replayable,
    xero_request_mark,
    xero_request_members,
    xero_request_record,
    xero_request_send,
    xero_requests_unsettled,
)
from xero_integration.services import xero_client_for_entity

logger = logging.getLogger(__name__)

NUMBER_TAKEN = "must be unique"
# Xero's refusals name the problem; these name the fix (matched on Xero's texts, notes §8).
REFUSAL_FIXES = (
    (
        "is archived",
        "Restore the contact in Xero, or use Delete Integration on the customer and sync it to "
        "create a new contact; then sync this again.",
    ),
    (
        "not subscribed to currency",
        "Add the currency in Xero (Settings → Currencies), or raise the document in the "
        "organisation's currency.",
    ),
    (
        "cannot be used with account code",
        "Map the tax rate to a tax type Xero allows on that account in Admin → Accounts.",
    ),
    (
        "lock date",
        "Change the date, or ask your accountant to move the lock date in Xero.",
    ),
)


def _with_fix(errors: list[str]) -> str:
    text = "; ".join(errors)
    fixes = [fix for marker, fix in REFUSAL_FIXES if marker in text.lower()]
    return " ".join([text, *dict.fromkeys(fixes)])


ALLOCATED = "has a payment or credit note allocated"
UNIT = Decimal("0.0001")


def invoice_url(*, tenant_id: str, invoice_id: str) -> str:
    return str(settings.XERO_INVOICE_URL_TEMPLATE).format(
        tenant_id=tenant_id, invoice_id=invoice_id
    )


def _link(obj: Model) -> XeroRecordLink | None:
    return XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).first()


def _excluded(obj: Model) -> str | None:
    row = SyncExclusion.objects.filter(
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        direction=SyncDirection.EXPORT,
    ).first()
    return row.reason if row else None


def _exclusions(model: type[Model], object_ids: Iterable[int]) -> dict[int, str]:
    """Object id → do-not-export reason, for many records of one model in one query."""
    return dict(
        SyncExclusion.objects.filter(
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=list(object_ids),
            direction=SyncDirection.EXPORT,
        ).values_list("object_id", "reason")
    )


def _entity_connected(entity_id: int) -> bool:
    return XeroEntityLink.objects.filter(entity_id=entity_id).exists()


# --- Enqueueing ---------------------------------------------------------------------------------


def _contact_jobs_for(
    customers: Iterable[Customer], user: AbstractBaseUser | None
) -> dict[int, BackgroundJob]:
    """Customer id → the contact push its documents must wait for: the customer's latest
    unfinished push, or a new one for a customer never synced (and not held back)."""
    by_id = {customer.pk: customer for customer in customers}
    content_type = ContentType.objects.get_for_model(Customer)
    jobs: dict[int, BackgroundJob] = {}
    for job in BackgroundJob.objects.filter(
        kind=JobKind.PUSH_CONTACT,
        target_content_type=content_type,
        target_object_id__in=list(by_id),
        state__in=UNFINISHED_STATES,
    ).order_by("pk"):
        jobs[job.target_object_id or 0] = job  # ascending: the latest one wins
    rest = set(by_id) - set(jobs)
    linked = set(
        XeroRecordLink.objects.filter(content_type=content_type, object_id__in=rest).values_list(
            "object_id", flat=True
        )
    )
    held = _exclusions(Customer, rest - linked)
    never_synced = [by_id[pk] for pk in sorted(rest - linked - set(held))]
    if never_synced:
        specs = [
            customer_push_spec(customer=customer, triggered_by=JobTrigger.DEPENDENCY, user=user)
            for customer in never_synced
        ]
        with transaction.atomic():
            created = job_enqueue_many(specs=specs)
        jobs.update(zip((c.pk for c in never_synced), created, strict=True))
    return jobs


def invoices_push_enqueue(
    *,
    invoices: list[Invoice],
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
) -> dict[int, BackgroundJob]:
    """Queue the invoices' pushes (each after its customer's contact push when needed), in a few
    statements however many there are. Returns invoice id → job; invoices of entities not
    connected to Xero get none."""
    connected = set(
        XeroEntityLink.objects.filter(
            entity_id__in={invoice.entity_id for invoice in invoices}
        ).values_list("entity_id", flat=True)
    )
    invoices = [invoice for invoice in invoices if invoice.entity_id in connected]
    if not invoices:
        return {}
    with transaction.atomic():
        contact_jobs = _contact_jobs_for((invoice.customer for invoice in invoices), user)
        jobs = job_enqueue_many(
            specs=[
                JobSpec(
                    kind=JobKind.PUSH_INVOICE,
                    entity=invoice.entity,
                    target=invoice,
                    description=f"Invoice {invoice.number} — {invoice.customer.name}"[:300],
                    direction=JobDirection.EXPORT,
                    triggered_by=triggered_by,
                    user=user,
                    depends_on=contact_jobs.get(invoice.customer_id),
                )
                for invoice in invoices
            ]
        )
    return {invoice.pk: job for invoice, job in zip(invoices, jobs, strict=True)}


def invoice_push_enqueue(
    *,
    invoice: Invoice,
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
) -> BackgroundJob | None:
    """Queue the invoice's push (after its customer's contact push when needed). Returns None
    when the entity is not connected to Xero."""
    return invoices_push_enqueue(invoices=[invoice], triggered_by=triggered_by, user=user).get(
        invoice.pk
    )


def credit_note_push_enqueue(
    *,
    credit_note: CreditNote,
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
) -> BackgroundJob | None:
    if not _entity_connected(credit_note.entity_id):
        return None
    with transaction.atomic():
        depends_on = None
        for allocation in credit_note.allocations.select_related("invoice"):
            if _link(allocation.invoice) is None:
                depends_on = invoice_push_enqueue(
                    invoice=allocation.invoice, triggered_by=JobTrigger.DEPENDENCY, user=user
                )
        if depends_on is None:
            depends_on = _contact_jobs_for([credit_note.customer], user).get(
                credit_note.customer_id
            )
        return job_enqueue(
            kind=JobKind.PUSH_CREDIT_NOTE,
            entity=credit_note.entity,
            target=credit_note,
            description=f"Credit note {credit_note.number} — {credit_note.customer.name}"[:300],
            direction=JobDirection.EXPORT,
            triggered_by=triggered_by,
            user=user,
            depends_on=depends_on,
        )


def invoice_is_transferred(invoice: Invoice) -> bool:
    """Whether the invoice is in Xero (for "lock invoices when transferred")."""
    return _link(invoice) is not None


# --- Building what is sent ---------------------------------------------------------------------


def _line_description(line: Any, *, entity: Any) -> str:
    if line.product_id is None or entity.sync_item_descriptions:
        return str(line.description)
    return str(line.product.name)


def invoice_document_data(
    *, invoice: Invoice, contact_id: str, xero_id: str | None
) -> xero.DocumentData:
    status = (
        "VOIDED" if invoice.status == DocumentStatus.VOID else invoice.entity.invoice_push_status
    )
    return xero.DocumentData(
        xero_id=xero_id,
        contact_id=contact_id,
        number=invoice.number,
        reference=invoice.reference,
        date=invoice.issue_date.isoformat(),
        due_date=invoice.due_date.isoformat(),
        currency=invoice.currency,
        line_amount_type=invoice.line_amount_type,
        status=status,
        lines=[
            xero.LineData(
                description=_line_description(line, entity=invoice.entity),
                quantity=line.quantity,
                unit_amount=line.unit_price,
                account_code=line.account.code if line.account else "",
                tax_type=line.tax_rate.xero_tax_type if line.tax_rate else "",
                discount_rate=line.discount_rate or None,
            )
            for line in _document_lines(invoice)
        ],
    )


def credit_note_document_data(
    *, credit_note: CreditNote, contact_id: str, xero_id: str | None
) -> xero.DocumentData:
    lines = []
    for line in _document_lines(credit_note):
        # Xero allows no discounts on credit notes (xero-api-notes.md §11): fold the discount
        # into the unit amount, at the 4 decimals unitdp=4 allows.
        unit = line.unit_price
        if line.discount_rate:
            unit = (unit * (100 - line.discount_rate) / 100).quantize(UNIT, ROUND_HALF_UP)
        lines.append(
            xero.LineData(
                description=_line_description(line, entity=credit_note.entity),
                quantity=line.quantity,
                unit_amount=unit,
                account_code=line.account.code if line.account else "",
                tax_type=line.tax_rate.xero_tax_type if line.tax_rate else "",
            )
        )
    return xero.DocumentData(
        xero_id=xero_id,
        contact_id=contact_id,
        number=credit_note.number,
        reference=credit_note.reference,
        date=credit_note.issue_date.isoformat(),
        due_date=None,
        currency=credit_note.currency,
        line_amount_type=credit_note.line_amount_type,
        status="AUTHORISED",
        lines=lines,
    )


# --- Pre-push check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganisationFacts:
    """What BMS last pulled from an entity's organisation, loaded once per batch."""

    tenant_id: str
    connection: XeroConnection | None
    accounts: dict[str, XeroAccount]
    tax_types: dict[str, XeroTaxRate]


def organisation_facts(*, entity_id: int) -> OrganisationFacts | None:
    link = XeroEntityLink.objects.filter(entity_id=entity_id).first()
    if link is None:
        return None
    tenant = link.tenant_id
    return OrganisationFacts(
        tenant_id=tenant,
        connection=XeroConnection.objects.filter(tenant_id=tenant).first(),
        accounts={a.code: a for a in XeroAccount.objects.filter(connection__tenant_id=tenant)},
        tax_types={t.tax_type: t for t in XeroTaxRate.objects.filter(connection__tenant_id=tenant)},
    )


def _document_lines(document: Invoice | CreditNote) -> Any:
    prefetched = getattr(document, "_prefetched_objects_cache", {})
    if "lines" in prefetched:
        return document.lines.all()
    return document.lines.select_related("account", "tax_rate", "product")


@dataclass(frozen=True)
class CustomerSyncState:
    """Whether the document's customer is in Xero, and why it is held back if it is not."""

    linked: bool
    exclusion: str | None


def document_prepush_problems(
    *,
    document: Invoice | CreditNote,
    facts: OrganisationFacts | None = None,
    customer_state: CustomerSyncState | None = None,
) -> list[str]:
    """What Xero would reject, in plain words with the fix, checked against what BMS last pulled
    from the organisation (Admin → Accounts). Shown on the invoice page before the first push.
    A batch passes `facts` and `customer_state` it loaded for all its documents at once."""
    problems: list[str] = []
    facts = facts or organisation_facts(entity_id=document.entity_id)
    if facts is None:
        return [f"{document.entity} is not connected to Xero: connect it in Admin → Integrations."]
    connection, accounts, tax_types = facts.connection, facts.accounts, facts.tax_types
    customer = document.customer
    if customer_state is None:
        linked = _link(customer) is not None
        customer_state = CustomerSyncState(
            linked=linked, exclusion=None if linked else _excluded(customer)
        )
    if not customer_state.linked and customer_state.exclusion is not None:
        problems.append(
            f"Held: customer {customer.name} is marked do not export "
            f"({customer_state.exclusion}); clear that on the customer page, or mark this "
            "document do not export too."
        )
    if customer.is_archived:
        problems.append(f"Customer {customer.name} is archived in BMS; unarchive it first.")
    for line in _document_lines(document):
        label = f"Line {line.position}"
        if line.account is None:
            problems.append(f"{label} has no account.")
        elif accounts:
            found = accounts.get(line.account.code)
            if found is None:
                problems.append(
                    f"Account code {line.account.code} does not exist in Xero's chart of "
                    "accounts — map it in Admin → Accounts."
                )
            elif found.status != "ACTIVE":
                problems.append(
                    f"Account code {line.account.code} is archived in Xero — use an active "
                    "account, or restore it in Xero."
                )
        if line.tax_rate is None:
            problems.append(f"{label} has no tax rate.")
        elif not line.tax_rate.xero_tax_type:
            problems.append(
                f"Tax rate “{line.tax_rate.name}” is not mapped to a Xero tax type — map it in "
                "Admin → Accounts."
            )
        elif tax_types and line.tax_rate.xero_tax_type not in tax_types:
            problems.append(
                f"Tax type {line.tax_rate.xero_tax_type} (“{line.tax_rate.name}”) does not exist "
                "in the Xero organisation — map the tax rate again in Admin → Accounts."
            )
    known = connection.currencies if connection else []
    if known and document.currency not in known:
        problems.append(
            f"The Xero organisation is not subscribed to {document.currency}: add the currency "
            "in Xero (Settings → Currencies) and pull the accounts again, or raise the document "
            f"in {connection.base_currency if connection else 'its base currency'}."
        )
    lock = connection.period_lock_date if connection else None
    if lock is not None and document.issue_date <= lock:
        problems.append(
            f"The date {document.issue_date} is on or before Xero's period lock date {lock}: "
            "change the date, or ask your accountant to move the lock date in Xero."
        )
    return list(dict.fromkeys(problems))


# --- The push -----------------------------------------------------------------------------------


@dataclass
class _Doc:
    job: BackgroundJob
    document: Invoice | CreditNote
    link: XeroRecordLink | None
    contact_id: str


class _Kind:
    """What differs between invoices and credit notes."""

    def __init__(self, model: type[Invoice] | type[CreditNote]) -> None:
        self.model = model
        self.is_invoice = model is Invoice
        self.noun = "invoice" if self.is_invoice else "credit note"
        self.create_operation = "PUT /Invoices" if self.is_invoice else "PUT /CreditNotes"
        self.update_operation = "POST /Invoices"

    def data(self, doc: _Doc, xero_id: str | None) -> xero.DocumentData:
        if isinstance(doc.document, Invoice):
            return invoice_document_data(
                invoice=doc.document, contact_id=doc.contact_id, xero_id=xero_id
            )
        return credit_note_document_data(
            credit_note=doc.document, contact_id=doc.contact_id, xero_id=xero_id
        )

    def send(self, api: xero.XeroClient, operation: str) -> Any:
        if operation == "PUT /Invoices":
            return lambda docs, key: api.invoices_create(invoices=docs, idempotency_key=key)
        if operation == "POST /Invoices":
            return lambda docs, key: api.invoices_update(invoices=docs, idempotency_key=key)
        return lambda docs, key: api.credit_notes_create(credit_notes=docs, idempotency_key=key)

    def find_by_numbers(self, api: xero.XeroClient, numbers: list[str]) -> dict[str, str]:
        """Number → Xero id of the documents Xero already holds."""
        if self.is_invoice:
            return {
                found.invoice_number: found.invoice_id
                for found in api.invoices_get(invoice_numbers=numbers)
                if found.status != "DELETED"
            }
        found_ids: dict[str, str] = {}
        for number in numbers:
            for row in api.credit_notes_get(where=f'CreditNoteNumber=="{number}"'):
                if row.xero_id:
                    found_ids[row.number] = row.xero_id
        return found_ids


class _DocBatch:
    def __init__(self, kind: _Kind, api: xero.XeroClient, connection: XeroConnection) -> None:
        self.kind = kind
        self.api = api
        self.connection = connection
        self.content_type = ContentType.objects.get_for_model(kind.model)
        self.outcomes: dict[int, Outcome] = {}
        self.pushed_links: dict[int, tuple[_Doc, XeroRecordLink]] = {}

    def link(
        self, doc: _Doc, xero_id: str, *, pushed: bool, result: xero.DocumentResult | None
    ) -> None:
        """Record that the document is `xero_id` in Xero. Pushed links are written together by
        flush_links() once a request's results are settled (one statement instead of one per
        document). A worker that dies before that is recovered like a lost reply: Xero refuses
        the number as taken, and the next attempt adopts the document it finds by number."""
        fields: dict[str, Any] = {
            "entity": doc.document.entity,
            "tenant_id": self.api.tenant_id,
            "xero_id": xero_id,
            "xero_number": doc.document.number,
        }
        if not pushed:
            doc.link, _ = XeroRecordLink.objects.update_or_create(
                content_type=self.content_type, object_id=doc.document.pk, defaults=fields
            )
            return
        fields.update(
            last_pushed_at=clock.now(),
            pushed_version=doc.document.version,
            pushed_snapshot={"total": str(doc.document.total)}
            | ({"xero_total": str(result.total)} if result else {}),
        )
        self.pushed_links[doc.document.pk] = (
            doc,
            XeroRecordLink(content_type=self.content_type, object_id=doc.document.pk, **fields),
        )

    def flush_links(self) -> None:
        if not self.pushed_links:
            return
        written = XeroRecordLink.objects.bulk_create(
            [link for _doc, link in self.pushed_links.values()],
            update_conflicts=True,
            unique_fields=["content_type", "object_id"],
            update_fields=[
                "entity",
                "tenant_id",
                "xero_id",
                "xero_number",
                "last_pushed_at",
                "pushed_version",
                "pushed_snapshot",
            ],
        )
        for (doc, _link), row in zip(self.pushed_links.values(), written, strict=True):
            doc.link = row
        self.pushed_links = {}

    def success(self, doc: _Doc, xero_id: str, **result: Any) -> None:
        self.outcomes[doc.job.pk] = JobSuccess(
            result={"xero_id": xero_id, **result},
            external_url=invoice_url(tenant_id=self.api.tenant_id, invoice_id=xero_id),
        )

    def send(self, operation: str, docs: list[_Doc]) -> list[xero.DocumentResult] | None:
        update = operation == self.kind.update_operation
        try:
            # The limiter is asked first: a refusal stores and builds nothing.
            with self.api.reserved():
                data = [
                    self.kind.data(d, d.link.xero_id if update and d.link else None) for d in docs
                ]
                request = xero_request_record(
                    connection=self.connection,
                    operation=operation,
                    body=[d.to_json() for d in data],
                    members=[Member(job_id=d.job.pk, object_id=d.document.pk) for d in docs],
                )
                return self.send_stored(request, docs)
        except JobError as exc:
            for doc in docs:
                self.outcomes[doc.job.pk] = exc
            return None

    def send_stored(
        self, request: XeroRequest, docs: list[_Doc]
    ) -> list[xero.DocumentResult] | None:
        send = self.kind.send(self.api, request.operation)

        def call(body: list[dict[str, Any]], key: str) -> list[xero.DocumentResult]:
            return send([xero.DocumentData.from_json(element) for element in body], key)

        try:
            return xero_request_send(request=request, send=call)
        except JobError as exc:
            for doc in docs:
                self.outcomes[doc.job.pk] = exc
            return None

    def settled(self, doc: _Doc, result: xero.DocumentResult, *, created: bool) -> None:
        if result.xero_id:
            self.link(doc, result.xero_id, pushed=True, result=result)
            if result.total != doc.document.total and result.status != "VOIDED":
                self.outcomes[doc.job.pk] = PermanentJobError(
                    f"Xero's total for {self.kind.noun} {doc.document.number} is {result.total}, "
                    f"BMS's is {doc.document.total}: check the tax rate mapping and the line "
                    "amounts type, then sync again.",
                    detail={"xero_total": str(result.total), "bms_total": str(doc.document.total)},
                )
                return
            self.success(doc, result.xero_id, created=created, xero_status=result.status)
            return
        if created and any(NUMBER_TAKEN in m for m in result.errors):
            found = self.kind.find_by_numbers(self.api, [doc.document.number])
            if doc.document.number in found:
                # Ours from an earlier attempt whose reply was lost: adopt it.
                self.link(doc, found[doc.document.number], pushed=True, result=None)
                self.success(doc, found[doc.document.number], adopted=True)
                return
        if any(ALLOCATED in m for m in result.errors):
            self.outcomes[doc.job.pk] = PermanentJobError(
                f"Xero will not change {self.kind.noun} {doc.document.number}: "
                f"{'; '.join(result.errors)} Correct it in BMS with a credit note and a re-issued "
                "invoice instead.",
                detail={"xero_errors": result.errors},
            )
            return
        self.outcomes[doc.job.pk] = PermanentJobError(
            f"Xero refused {self.kind.noun} {doc.document.number}: {_with_fix(result.errors)}",
            detail={"xero_errors": result.errors},
        )


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def documents_push(
    *, jobs: list[BackgroundJob], model: type[Invoice] | type[CreditNote]
) -> dict[int, Outcome]:
    """Push the jobs' invoices (or credit notes) in batches of ≤ 50, one outcome per job."""
    kind = _Kind(model)
    outcomes: dict[int, Outcome] = {}
    documents = (
        model.objects.select_related("entity", "customer")
        .prefetch_related("lines__account", "lines__tax_rate", "lines__product")
        .in_bulk([job.target_object_id for job in jobs if job.target_object_id])
    )
    content_type = ContentType.objects.get_for_model(model)
    customer_type = ContentType.objects.get_for_model(Customer)
    links = {
        link.object_id: link
        for link in XeroRecordLink.objects.filter(
            content_type=content_type, object_id__in=list(documents)
        )
    }
    contact_ids = dict(
        XeroRecordLink.objects.filter(
            content_type=customer_type,
            object_id__in=[d.customer_id for d in documents.values()],
        ).values_list("object_id", "xero_id")
    )
    excluded = _exclusions(model, documents)
    customers_excluded = _exclusions(Customer, {d.customer_id for d in documents.values()})
    live: list[_Doc] = []
    facts = organisation_facts(entity_id=jobs[0].entity_id) if jobs[0].entity_id else None
    for job in jobs:
        document = documents.get(job.target_object_id or 0)
        if document is None:
            outcomes[job.pk] = JobSkipped(f"The {kind.noun} no longer exists in BMS.")
            continue
        reason = excluded.get(document.pk)
        if reason is not None:
            outcomes[job.pk] = JobSkipped(f"skipped: {reason}")
            continue
        if document.status == DocumentStatus.DRAFT:
            outcomes[job.pk] = JobSkipped(
                f"{document.number} is a draft; it is pushed once released."
            )
            continue
        link = links.get(document.pk)
        if document.status == DocumentStatus.VOID and link is None:
            outcomes[job.pk] = JobSkipped(f"{document.number} was voided before it reached Xero.")
            continue
        contact_id = contact_ids.get(document.customer_id)
        problems = document_prepush_problems(
            document=document,
            facts=facts,
            customer_state=CustomerSyncState(
                linked=contact_id is not None,
                exclusion=customers_excluded.get(document.customer_id),
            ),
        )
        if contact_id is None:
            problems.insert(
                0,
                f"Sync the customer first: {document.customer.name} is not in Xero yet "
                "(its contact push has not succeeded).",
            )
        if problems:
            outcomes[job.pk] = PermanentJobError(" ".join(problems), detail={"problems": problems})
            continue
        if (
            link is not None
            and link.pushed_version == document.version
            and not _allocations_pending(document, link)
        ):
            # In Xero and up to date (e.g. a worker pushed it, then died before recording the
            # job): the job's work is done, so it succeeds rather than reporting a skip.
            outcomes[job.pk] = JobSuccess(
                result={"xero_id": link.xero_id, "already_in_xero": True},
                external_url=invoice_url(tenant_id=link.tenant_id, invoice_id=link.xero_id),
            )
            continue
        assert contact_id is not None
        live.append(_Doc(job=job, document=document, link=link, contact_id=contact_id))
    if not live:
        return outcomes

    entity = live[0].document.entity
    api = xero_client_for_entity(entity=entity)
    batch = _DocBatch(kind, api, XeroConnection.objects.get(tenant_id=api.tenant_id))
    by_job = {doc.job.pk: doc for doc in live}

    # 1. Requests whose reply was lost: replay within the window, else look up by number.
    unsettled = xero_requests_unsettled(job_ids=list(by_job), operation_prefix="")
    fresh: list[_Doc] = []
    to_find: list[_Doc] = []
    replays: dict[int, XeroRequest] = {}
    for job_id, doc in by_job.items():
        request = unsettled.get(job_id)
        if request is None or request.operation not in (
            kind.create_operation,
            kind.update_operation,
        ):
            fresh.append(doc)
        elif xero_request_is_replayable(request):
            replays[request.pk] = request
        else:
            xero_request_mark(request=request, outcome="superseded")
            (to_find if doc.link is None else fresh).append(doc)
    for request in replays.values():
        members = xero_request_members(request)
        in_batch = [by_job[m.job_id] for m in members if m.job_id in by_job]
        results = batch.send_stored(request, in_batch)
        if results is None:
            xero_request_mark(request=request, outcome="superseded")
            continue
        for member, result in zip(members, results, strict=True):
            replayed = by_job.get(member.job_id)
            if replayed is not None:
                batch.settled(replayed, result, created=request.operation == kind.create_operation)
        batch.flush_links()
    if to_find:
        found = kind.find_by_numbers(api, [doc.document.number for doc in to_find])
        for doc in to_find:
            if doc.document.number in found:
                batch.link(doc, found[doc.document.number], pushed=False, result=None)
            fresh.append(doc)

    # 2. Creates (not in Xero yet) and updates (a correction, or a void, of one that is).
    creates = [doc for doc in fresh if doc.link is None]
    updates = [doc for doc in fresh if doc.link is not None]
    for chunk in _chunks(creates, 50):
        results = batch.send(kind.create_operation, chunk)
        for doc, result in zip(chunk, results or [], strict=False):
            batch.settled(doc, result, created=True)
        batch.flush_links()
    if not kind.is_invoice:
        # A credit note in Xero stays as approved; what can still change is its allocations.
        updates = []
    for chunk in _chunks(updates, 50):
        results = batch.send(kind.update_operation, chunk)
        for doc, result in zip(chunk, results or [], strict=False):
            batch.settled(doc, result, created=False)
        batch.flush_links()

    if not kind.is_invoice:
        for doc in live:
            outcome = batch.outcomes.get(doc.job.pk)
            if doc.link is None or (outcome is not None and not isinstance(outcome, JobSuccess)):
                continue
            try:
                allocated = _allocations_push(api, doc)
            except JobError as exc:
                # Only this credit note's job carries the failure; the batch's others stand.
                batch.outcomes[doc.job.pk] = exc
                continue
            if outcome is None:
                batch.success(doc, doc.link.xero_id, allocated=allocated)
    return {**outcomes, **{k: v for k, v in batch.outcomes.items() if k in by_job}}


def _allocations_pending(document: Invoice | CreditNote, link: XeroRecordLink) -> bool:
    if not isinstance(document, CreditNote):
        return False
    done = set(link.pushed_snapshot.get("allocations", []))
    return any(pk not in done for pk in document.allocations.values_list("pk", flat=True))


def _allocations_push(api: xero.XeroClient, doc: _Doc) -> int:
    """Allocate the credit note to its invoices once each, with a deterministic key; returns
    how many allocations were made now."""
    assert doc.link is not None
    note = doc.document
    done = set(doc.link.pushed_snapshot.get("allocations", []))
    made = 0
    for allocation in note.allocations.select_related("invoice"):  # type: ignore[union-attr]
        if allocation.pk in done:
            continue
        invoice_link = _link(allocation.invoice)
        if invoice_link is None:
            # Its invoice's push is queued (the allocation queued it): try again shortly.
            raise TransientJobError(
                f"Invoice {allocation.invoice.number} is not in Xero yet, so credit note "
                f"{note.number} waits to be allocated to it.",
                retry_after=30,
            )
        api.credit_note_allocate(
            credit_note_id=doc.link.xero_id,
            invoice_id=invoice_link.xero_id,
            amount=allocation.amount,
            date=allocation.date,
            idempotency_key=f"bms-allocation-{allocation.pk}",
        )
        done.add(allocation.pk)
        made += 1
        doc.link.pushed_snapshot = {**doc.link.pushed_snapshot, "allocations": sorted(done)}
        doc.link.save(update_fields=["pushed_snapshot"])
    return made


# --- Scheduled and bulk pushes ----------------------------------------------------------------


def invoices_needing_push(*, entity_id: int) -> list[Invoice]:
    """Released or voided invoices that are not in Xero, or changed since their last push."""
    content_type = ContentType.objects.get_for_model(Invoice)
    pushed = dict(
        XeroRecordLink.objects.filter(content_type=content_type, entity_id=entity_id).values_list(
            "object_id", "pushed_version"
        )
    )
    excluded = set(
        SyncExclusion.objects.filter(
            content_type=content_type, direction=SyncDirection.EXPORT
        ).values_list("object_id", flat=True)
    )
    candidates = Invoice.objects.filter(
        entity_id=entity_id, status__in=[DocumentStatus.RELEASED, DocumentStatus.VOID]
    ).select_related("entity", "customer")
    return [
        invoice
        for invoice in candidates.iterator(chunk_size=2000)
        if invoice.pk not in excluded
        and (
            (invoice.pk not in pushed and invoice.status == DocumentStatus.RELEASED)
            or (invoice.pk in pushed and pushed[invoice.pk] != invoice.version)
        )
    ]


def invoices_push_due(*, entity_id: int, triggered_by: str = JobTrigger.SCHEDULE) -> list[int]:
    """Queue pushes for every invoice that needs one; returns the job ids.

    A thousand at a time in one transaction: workers then see whole batches (50 contacts, 50
    invoices per Xero request) rather than claiming while the rest is still being queued."""
    job_ids: list[int] = []
    invoices = invoices_needing_push(entity_id=entity_id)
    for start in range(0, len(invoices), 1000):
        jobs = invoices_push_enqueue(
            invoices=invoices[start : start + 1000], triggered_by=triggered_by
        )
        job_ids += [job.pk for job in jobs.values()]
    return job_ids
