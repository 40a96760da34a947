"""Payments between BMS and Xero.

Pull (Xero → BMS), reliability-notes.md §6.1:

* each organisation is pulled with `If-Modified-Since` = the high-water mark (the newest
  UpdatedDateUTC seen) minus a small overlap (payments_pull_since), paging 1,000 at a time until
  a short page, so a poll with nothing new costs one call;
* each page is upserted in its own transaction, keyed by Xero's PaymentID (unique on
  `billing.Payment.xero_payment_id`), so re-reading the overlap or a retried page stores nothing
  twice; a payment Xero reports as DELETED is reversed (kept, `is_deleted=True`);
* the invoice's paid / due / status are re-derived from its payments
  (`invoice_amounts_recalculate`, never `+=`), so they follow Xero whatever order pages arrive in;
* the cursor advances only after the last page has committed; a pull interrupted midway (a
  fault, a rate-limit wait) resumes at its next page on the job's next attempt and keeps the old
  cursor until it completes.

Push (BMS → Xero): a payment recorded in BMS (`source="bms"`) is created in Xero against its
invoice, into the bank account mapped for the entity and payment method. Payments that came from
Xero are never pushed back. Xero's Idempotency-Key is remembered for only ~6 minutes, so:

* every attempt's request is stored (xero_integration.requests) before it is sent, with a key
  derived from that stored row; a lost reply is replayed with the same key inside the window;
* after the window, or after any failed attempt, the payment is looked up in Xero by its
  Reference, which ends with a tag naming the BMS payment (`[BMS-P<id>]`), before it is created
  again with a new key. The pull recognises the same tag, so a pushed payment whose reply was lost
  is adopted by the pull rather than stored a second time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Q

from admin_jobs.errors import JobSkipped, JobWait, PermanentJobError
from admin_jobs.handlers import JobSuccess
from admin_jobs.models import (
    UNFINISHED_STATES,
    BackgroundJob,
    JobDirection,
    JobKind,
    JobTrigger,
)
from admin_jobs.services import job_enqueue

# A module import: billing.services imports xero_integration.hooks, which may import this module.
from billing import services as billing_services
from billing.models import Entity, Invoice, Payment, PaymentSource
from bms import clock
from xero_integration import client as xero
from xero_integration.models import (
    ConnectionStatus,
    PaymentAccountMapping,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
    XeroRequest,
    XeroRequestMember,
)
from xero_integration.requests import (
    Member,
    xero_request_is_replayable,
    xero_request_mark,
    xero_request_record,
    xero_request_send,
)
from xero_integration.services import xero_client_for_connection, xero_client_for_entity

logger = logging.getLogger(__name__)

# Xero's largest page (xero-api-notes.md §4): fewer calls against the 60-a-minute limit.
PULL_PAGE_SIZE = 1000
# Re-read a little before the high-water mark: UpdatedDateUTC is accurate to the second and a
# record committed late may carry an earlier stamp. Re-reading is harmless (keyed by PaymentID).
PULL_OVERLAP = timedelta(minutes=5)
# A pull that needs more pages than this is a bug or a runaway, not a payment backlog.
PULL_MAX_PAGES = 2000
PULL_INTERVAL = timedelta(hours=2)
# The beat task runs hourly and a pull finishes a little after the hour it started in; without
# some slack an organisation pulled at 09:00:40 would not be due at 11:00:00 and wait till noon.
PULL_SCHEDULE_SLACK = timedelta(minutes=15)
# How long a webhook-triggered pull waits before it starts, so a burst of invoice events (a
# batch of pushes, several payments) collapses into one unstarted job and one pull.
WEBHOOK_PULL_DELAY = timedelta(seconds=30)

# xero-python's create_payment (one payment) is POST /Payments; stored requests use this name.
PAYMENT_CREATE = "POST /Payments"
# While the invoice's own push is still unfinished, a payment push checks again this often.
INVOICE_PUSH_WAIT = timedelta(seconds=60)
XERO_REFERENCE_MAX = 255
_TAG_RE = re.compile(r"\[BMS-P(\d+)\]\s*$")


# --- Shared helpers -----------------------------------------------------------------------------


def _invoice_content_type() -> ContentType:
    return ContentType.objects.get_for_model(Invoice)


def invoice_link_get(*, invoice: Invoice) -> XeroRecordLink | None:
    """The invoice's link to Xero, or None while it has not been pushed."""
    return XeroRecordLink.objects.filter(
        content_type=_invoice_content_type(), object_id=invoice.pk
    ).first()


def payment_xero_reference(*, payment: Payment) -> str:
    """The Reference BMS gives a pushed payment: the user's reference, then a tag naming the BMS
    payment. The tag is the business key a later look-up (and the pull) finds it by."""
    tag = f"[BMS-P{payment.pk}]"
    text = payment.reference.strip()[: XERO_REFERENCE_MAX - len(tag) - 1]
    return f"{text} {tag}" if text else tag


def payment_id_from_reference(reference: str) -> int | None:
    match = _TAG_RE.search(reference or "")
    return int(match.group(1)) if match else None


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _connection_entity(connection: XeroConnection) -> Entity | None:
    link = (
        XeroEntityLink.objects.select_related("entity")
        .filter(tenant_id=connection.tenant_id)
        .order_by("entity_id")
        .first()
    )
    return link.entity if link is not None else None


# --- Pull: enqueueing and the schedule ----------------------------------------------------------


def payments_pull_enqueue(
    *,
    connection: XeroConnection,
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
    not_before: datetime | None = None,
) -> BackgroundJob | None:
    """Queue a payments pull for the organisation. Requests made before it starts collapse into
    one job (one per organisation, whichever of its entities asked). Returns None when no entity
    is linked to the organisation."""
    entity = _connection_entity(connection)
    if entity is None:
        return None
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.PULL_PAYMENTS,
            entity=entity,
            target=connection,
            description=f"Pull payments from {connection.tenant_name}"[:300],
            direction=JobDirection.IMPORT,
            triggered_by=triggered_by,
            user=user,
            not_before=not_before,
            dedupe_key=f"pull_payments:{connection.tenant_id}",
        )


def entity_in_business_hours(*, entity: Entity, at: datetime) -> bool:
    """Whether `at` falls on one of the entity's business days and hours, in its time zone."""
    local = at.astimezone(ZoneInfo(entity.timezone))
    if str(local.isoweekday()) not in entity.business_days:
        return False
    return entity.business_hours_start <= local.time() < entity.business_hours_end


def connections_due_for_payments_pull(*, at: datetime) -> list[XeroConnection]:
    """Connected organisations with an entity in business hours, last pulled ≥ 2 hours ago."""
    due_before = at - (PULL_INTERVAL - PULL_SCHEDULE_SLACK)
    candidates = XeroConnection.objects.filter(status=ConnectionStatus.CONNECTED).filter(
        Q(payments_pulled_at__isnull=True) | Q(payments_pulled_at__lte=due_before)
    )
    due = []
    for connection in candidates:
        entities = Entity.objects.filter(
            pk__in=XeroEntityLink.objects.filter(connection=connection).values("entity_id")
        )
        if any(entity_in_business_hours(entity=entity, at=at) for entity in entities):
            due.append(connection)
    return due


def payments_pull_schedule() -> list[BackgroundJob]:
    """The hourly beat: queue a pull for each organisation that is due."""
    jobs = []
    for connection in connections_due_for_payments_pull(at=clock.now()):
        job = payments_pull_enqueue(connection=connection, triggered_by=JobTrigger.SCHEDULE)
        if job is not None:
            jobs.append(job)
    return jobs


# --- Pull: the work -----------------------------------------------------------------------------


@dataclass
class PaymentsPullResult:
    calls: int = 0
    pages: int = 0
    seen: int = 0
    created: int = 0
    reversed: int = 0
    restored: int = 0
    adopted: int = 0  # BMS payments pushed to Xero, recognised by their Reference tag
    unchanged: int = 0
    ignored_unlinked: int = 0  # payments on invoices BMS does not know
    ignored_other: int = 0
    invoices_updated: int = 0
    since: str | None = None
    high_water_mark: str | None = None
    resumed_at_page: int | None = None
    invoice_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("invoice_ids")
        return data


@dataclass
class _Progress:
    """How far an interrupted pull got; kept on the job so its next attempt resumes there."""

    since: str | None
    started_at: str
    next_page: int
    newest: str | None


PROGRESS_KEY = "pull_progress"


def _progress_load(job: BackgroundJob | None, since: datetime | None) -> _Progress | None:
    if job is None:
        return None
    raw = (job.payload or {}).get(PROGRESS_KEY)
    if not isinstance(raw, dict):
        return None
    # Progress made from another cursor (the cursor moved on meanwhile) is stale.
    if raw.get("since") != (since.isoformat() if since else None):
        return None
    return _Progress(
        since=raw.get("since"),
        started_at=str(raw["started_at"]),
        next_page=int(raw["next_page"]),
        newest=raw.get("newest"),
    )


def _progress_save(job: BackgroundJob | None, progress: _Progress | None) -> None:
    if job is None:
        return
    payload = dict(job.payload or {})
    if progress is None:
        payload.pop(PROGRESS_KEY, None)
    else:
        payload[PROGRESS_KEY] = asdict(progress)
    BackgroundJob.objects.filter(pk=job.pk).update(payload=payload)
    job.payload = payload


def payments_pull_since(
    *, high_water_mark: datetime | None, last_pull_started_at: datetime | None
) -> datetime | None:
    """The If-Modified-Since of the next pull: the high-water mark, moved back by the overlap
    as far as needed to re-read what may have been committed late.

    Only a record still uncommitted when the last pull started can have been missed while
    carrying a stamp at or before the high-water mark; such a stamp is at most PULL_OVERLAP
    older than that start. So the pull re-reads from min(mark, last start − overlap) — never
    earlier than mark − overlap — and a poll hours after the last change re-reads nothing.
    """
    if high_water_mark is None:
        return None
    since = high_water_mark - PULL_OVERLAP
    if last_pull_started_at is not None:
        since = max(since, min(high_water_mark, last_pull_started_at - PULL_OVERLAP))
    return since


def payments_pull(
    *, connection: XeroConnection, job: BackgroundJob | None = None
) -> PaymentsPullResult:
    """Pull the organisation's payments changed since the cursor and apply them to BMS.

    Raises the client's errors (XeroTransientError, XeroRateLimitError, XeroAuthError, …) for the
    job engine; pages already stored stay stored and the cursor stays where it was. With `job`,
    a later attempt of the same job resumes at the page after the last one stored.
    `payments_pulled_at` records when the last complete pull started (what it read is current
    as of then).
    """
    api = xero_client_for_connection(connection=connection)
    cursor, last_started = XeroConnection.objects.values_list(
        "payments_high_water_mark", "payments_pulled_at"
    ).get(pk=connection.pk)
    since = payments_pull_since(high_water_mark=cursor, last_pull_started_at=last_started)
    result = PaymentsPullResult(since=since.isoformat() if since else None)
    started_at = clock.now()
    newest = cursor
    page = 1
    progress = _progress_load(job, since)
    if progress is not None:
        page = progress.next_page
        started_at = datetime.fromisoformat(progress.started_at)
        result.resumed_at_page = page
        newest = max(filter(None, [newest, _parse(progress.newest)]), default=None)
    while True:
        if page > PULL_MAX_PAGES:
            raise PermanentJobError(
                f"Xero returned more than {PULL_MAX_PAGES} pages of payments for "
                f"{connection.tenant_name}; BMS stopped rather than page for ever. Tell your "
                "developer."
            )
        rows = api.payments_get(page=page, page_size=PULL_PAGE_SIZE, if_modified_since=since)
        result.calls += 1
        result.pages += 1
        _payments_page_store(connection=connection, rows=rows, result=result)
        for row in rows:
            stamp = _aware(row.updated_at)
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        if len(rows) < PULL_PAGE_SIZE:
            break
        page += 1
        _progress_save(
            job,
            _Progress(
                since=result.since,
                started_at=started_at.isoformat(),
                next_page=page,
                newest=newest.isoformat() if newest else None,
            ),
        )
    with transaction.atomic():
        fields: dict[str, Any] = {"payments_pulled_at": started_at}
        # Never move the cursor backwards (a pull that saw nothing keeps it).
        if newest is not None and (cursor is None or newest > cursor):
            fields["payments_high_water_mark"] = newest
        XeroConnection.objects.filter(pk=connection.pk).update(**fields)
        _progress_save(job, None)
    result.high_water_mark = newest.isoformat() if newest else None
    logger.info("payments pull for tenant %s: %s", connection.tenant_id, result.to_json())
    return result


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _payments_page_store(
    *, connection: XeroConnection, rows: list[xero.XeroPaymentRecord], result: PaymentsPullResult
) -> None:
    """Apply one page in one transaction; the invoices it changed are re-derived in it too."""
    if not rows:
        return
    content_type = _invoice_content_type()
    invoice_ids = {row.invoice_id for row in rows if row.invoice_id}
    links = {
        link.xero_id.lower(): link
        for link in XeroRecordLink.objects.filter(
            content_type=content_type,
            tenant_id=connection.tenant_id,
            xero_id__in=invoice_ids | {i.lower() for i in invoice_ids},
        )
    }
    now = clock.now()
    with transaction.atomic():
        known = {
            p.xero_payment_id: p
            for p in Payment.objects.select_for_update().filter(
                xero_payment_id__in=[row.payment_id for row in rows if row.payment_id]
            )
        }
        changed: set[int] = set()
        touched: set[int] = set()
        for row in rows:
            result.seen += 1
            link = links.get(row.invoice_id.lower()) if row.invoice_id else None
            payment = known.get(row.payment_id)
            if payment is None:
                if link is None:
                    result.ignored_unlinked += 1
                    continue
                payment = _payment_adopt(row=row, invoice_id=link.object_id)
                if payment is not None:
                    result.adopted += 1
                else:
                    payment = _payment_create(row=row, invoice_id=link.object_id, now=now)
                    if payment is None:
                        result.ignored_other += 1
                        continue
                    result.created += 1
                    known[row.payment_id] = payment
                    changed.add(payment.invoice_id)
                    touched.add(payment.invoice_id)
                    continue
                known[row.payment_id] = payment
            touched.add(payment.invoice_id)
            deleted = row.status == "DELETED"
            if payment.is_deleted == deleted:
                result.unchanged += 1
                continue
            Payment.objects.filter(pk=payment.pk).update(is_deleted=deleted, updated_at=now)
            payment.is_deleted = deleted
            if deleted:
                result.reversed += 1
            else:
                result.restored += 1
            changed.add(payment.invoice_id)
        for invoice in Invoice.objects.filter(pk__in=changed).order_by("pk"):
            billing_services.invoice_amounts_recalculate(invoice=invoice)
        result.invoices_updated += len(changed)
        result.invoice_ids.extend(sorted(changed))
        XeroRecordLink.objects.filter(content_type=content_type, object_id__in=touched).update(
            last_pulled_at=now
        )


def _payment_adopt(*, row: xero.XeroPaymentRecord, invoice_id: int) -> Payment | None:
    """A payment BMS pushed whose PaymentID BMS has not stored yet (its reply was lost, or the
    push has not recorded it yet): link it instead of storing it a second time."""
    payment_pk = payment_id_from_reference(row.reference)
    if payment_pk is None:
        return None
    adopted = Payment.objects.filter(
        pk=payment_pk,
        invoice_id=invoice_id,
        source=PaymentSource.BMS,
        xero_payment_id__isnull=True,
    ).update(xero_payment_id=row.payment_id, updated_at=clock.now())
    return Payment.objects.get(pk=payment_pk) if adopted else None


def _payment_create(
    *, row: xero.XeroPaymentRecord, invoice_id: int, now: datetime
) -> Payment | None:
    if row.amount <= 0 or not row.payment_id:
        # Not a receipt against the invoice (BMS records only positive payments).
        logger.warning("payments pull: ignored payment %s of %s", row.payment_id, row.amount)
        return None
    try:
        # A savepoint: a push recording the same PaymentID at this moment must not break the page.
        with transaction.atomic():
            return Payment.objects.create(
                invoice_id=invoice_id,
                amount=row.amount,
                date=_as_date(row.date),
                reference=(row.reference or "")[:255],
                source=PaymentSource.XERO,
                is_deleted=row.status == "DELETED",
                xero_payment_id=row.payment_id,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        return Payment.objects.filter(xero_payment_id=row.payment_id).first()


# --- Push ---------------------------------------------------------------------------------------


def _unfinished_invoice_push(invoice: Invoice) -> BackgroundJob | None:
    return (
        BackgroundJob.objects.filter(
            kind=JobKind.PUSH_INVOICE,
            target_content_type=_invoice_content_type(),
            target_object_id=invoice.pk,
            state__in=UNFINISHED_STATES,
        )
        .order_by("-pk")
        .first()
    )


def payment_push_enqueue(
    *,
    payment: Payment,
    user: AbstractBaseUser | None = None,
    triggered_by: str = JobTrigger.USER,
) -> BackgroundJob | None:
    """Queue the push of a payment recorded in BMS to Xero.

    Returns None (and queues nothing) for a payment that came from Xero or is already there, and
    for an entity that does not sync with Xero. When the invoice is not in Xero yet, the job waits
    for the invoice's unfinished push. Call it in the transaction that records the payment.
    """
    if payment.source != PaymentSource.BMS or payment.xero_payment_id:
        return None
    invoice = payment.invoice
    if not XeroEntityLink.objects.filter(entity_id=invoice.entity_id).exists():
        return None
    depends_on = None
    if invoice_link_get(invoice=invoice) is None:
        depends_on = _unfinished_invoice_push(invoice)
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.PUSH_PAYMENT,
            entity=invoice.entity,
            target=payment,
            description=f"Payment {payment.amount} on {invoice.number}"[:300],
            direction=JobDirection.EXPORT,
            triggered_by=triggered_by,
            user=user,
            depends_on=depends_on,
        )


def _invoice_url(*, tenant_id: str, invoice_id: str) -> str:
    return str(settings.XERO_INVOICE_URL_TEMPLATE).format(
        tenant_id=tenant_id, invoice_id=invoice_id
    )


def _latest_request(payment: Payment) -> XeroRequest | None:
    member = (
        XeroRequestMember.objects.filter(object_id=payment.pk, request__operation=PAYMENT_CREATE)
        .select_related("request")
        .order_by("-request_id")
        .first()
    )
    return member.request if member is not None else None


def _payment_body(
    *, payment: Payment, invoice_link: XeroRecordLink, account_code: str
) -> dict[str, Any]:
    return {
        "invoice_id": invoice_link.xero_id,
        "account_code": account_code,
        "amount": str(payment.amount),
        "date": payment.date.isoformat(),
        "reference": payment_xero_reference(payment=payment),
    }


def _send(api: xero.XeroClient, request: XeroRequest) -> xero.XeroPaymentRecord:
    def send(body: list[dict[str, Any]], key: str) -> list[xero.XeroPaymentRecord]:
        element = body[0]
        return [
            api.payment_create(
                invoice_id=element["invoice_id"],
                account_code=element["account_code"],
                amount=Decimal(element["amount"]),
                date=date.fromisoformat(element["date"]),
                reference=element["reference"],
                idempotency_key=key,
            )
        ]

    return xero_request_send(request=request, send=send)[0]


def _payment_find(
    api: xero.XeroClient, *, reference: str, invoice_id: str
) -> xero.XeroPaymentRecord | None:
    """The live payment this BMS payment became in Xero, if an earlier attempt created it."""
    escaped = reference.replace("\\", "\\\\").replace('"', '\\"')
    for found in api.payments_get(where=f'Reference=="{escaped}"'):
        if found.status != "DELETED" and found.invoice_id.lower() == invoice_id.lower():
            return found
    return None


def payment_push(*, job: BackgroundJob) -> JobSuccess:
    """Create the job's BMS payment in Xero once, and store its PaymentID on the payment.

    Raises JobSkipped (nothing to do), JobWait (the invoice push is still running), and
    PermanentJobError with what to fix (no bank account mapped, the invoice is not in Xero,
    Xero's validation messages); the client's transient errors propagate for the engine.
    """
    payment = (
        Payment.objects.select_related("invoice__entity")
        .filter(pk=job.target_object_id or 0)
        .first()
    )
    if payment is None:
        raise JobSkipped("The payment no longer exists in BMS.")
    if payment.source != PaymentSource.BMS:
        raise JobSkipped("This payment came from Xero; BMS never pushes it back.")
    invoice = payment.invoice
    link = invoice_link_get(invoice=invoice)
    if payment.xero_payment_id:
        return _pushed(payment, link, payment.xero_payment_id, already=True)
    if payment.is_deleted:
        raise JobSkipped("The payment was reversed in BMS before it reached Xero.")

    mapping = PaymentAccountMapping.objects.filter(
        entity_id=invoice.entity_id, method=payment.method
    ).first()
    if mapping is None:
        raise PermanentJobError(
            f"Map the {payment.get_method_display().lower()} payment method to a bank account in "
            f"Admin → Accounts (for {invoice.entity.name}), then press Retry now.",
            detail={"entity": invoice.entity.code, "method": payment.method},
        )
    if link is None:
        if _unfinished_invoice_push(invoice) is not None:
            raise JobWait(
                f"Waiting for invoice {invoice.number} to reach Xero first.",
                until=clock.now() + INVOICE_PUSH_WAIT,
            )
        raise PermanentJobError(
            f"Invoice {invoice.number} is not in Xero yet: sync the invoice to Xero, then press "
            "Retry now on this payment."
        )

    api = xero_client_for_entity(entity=invoice.entity)
    if api.tenant_id != link.tenant_id:
        raise xero.XeroTenantMismatchError(
            f"Invoice {invoice.number} is in Xero organisation {link.tenant_id}, but "
            f"{invoice.entity.name} now reaches {api.tenant_id}; BMS stopped rather than pay it "
            "in the wrong organisation."
        )
    connection = XeroConnection.objects.get(tenant_id=api.tenant_id)
    body = _payment_body(payment=payment, invoice_link=link, account_code=mapping.account_code)

    previous = _latest_request(payment)
    record: xero.XeroPaymentRecord | None = None
    adopted = False
    try:
        replayable = previous is not None and xero_request_is_replayable(previous)
        if previous is not None and previous.outcome == "unknown" and replayable:
            # Inside Xero's window: the same key makes Xero answer with the first response
            # instead of applying the payment twice.
            record = _send(api, previous)
        else:
            if previous is not None:
                # An earlier attempt may have created it (lost reply past the window, a replay
                # that failed, a crash before the ID was stored): look before creating again.
                record = _payment_find(
                    api, reference=str(previous.body[0]["reference"]), invoice_id=link.xero_id
                )
                if previous.outcome in ("unknown", ""):
                    xero_request_mark(request=previous, outcome="superseded")
                adopted = record is not None
            if record is None:
                request = xero_request_record(
                    connection=connection,
                    operation=PAYMENT_CREATE,
                    body=[body],
                    members=[Member(job_id=job.pk, object_id=payment.pk)],
                )
                record = _send(api, request)
    except xero.XeroPermanentError as exc:
        if isinstance(exc, xero.XeroTenantMismatchError):
            raise
        raise PermanentJobError(
            f"Xero refused the payment of {payment.amount} on invoice {invoice.number}: "
            f"{'; '.join(exc.messages)} Correct it in BMS or Xero, then press Retry now.",
            detail={"xero_errors": exc.messages, "status": exc.status},
        ) from None
    return _pushed(payment, link, record.payment_id, adopted=adopted)


def _pushed(
    payment: Payment,
    link: XeroRecordLink | None,
    payment_id: str,
    *,
    already: bool = False,
    adopted: bool = False,
) -> JobSuccess:
    now = clock.now()
    if not already:
        try:
            with transaction.atomic():
                stored = Payment.objects.filter(pk=payment.pk, xero_payment_id__isnull=True).update(
                    xero_payment_id=payment_id, updated_at=now
                )
        except IntegrityError:
            raise PermanentJobError(
                f"Xero payment {payment_id} is already stored in BMS as another payment; "
                "tell your developer.",
                detail={"payment_id": payment_id},
            ) from None
        if not stored:
            current = Payment.objects.values_list("xero_payment_id", flat=True).get(pk=payment.pk)
            if current != payment_id:
                raise PermanentJobError(
                    f"This payment is already linked to Xero payment {current}, but Xero also "
                    f"has payment {payment_id} for it: check the invoice in Xero for a duplicate.",
                    detail={"stored": current, "found": payment_id},
                )
        payment.xero_payment_id = payment_id
    return JobSuccess(
        result={"payment_id": payment_id, "already_in_xero": already, "adopted": adopted},
        external_url=(
            _invoice_url(tenant_id=link.tenant_id, invoice_id=link.xero_id) if link else ""
        ),
    )
