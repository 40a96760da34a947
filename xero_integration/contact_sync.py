"""BMS customers as Xero contacts. BMS is the master: every push overwrites Xero's copy.

A push never creates a duplicate contact:
* a customer never synced is created directly (PUT, no look-up call), with a stable
  ContactNumber (`BMS-C<id>`) so the contact can always be found again;
* a lost reply is settled by re-sending the identical request with the same Idempotency-Key
  within Xero's window, and after it by a look-up by ContactNumber before creating again;
* a create that meets Xero's "name already assigned" error looks the contact up by exact name
  among active contacts and links to it, as the help article promises for re-synced customers —
  unless it carries another BMS customer's ContactNumber, which is a clash (two customers would
  collapse into one contact), except for customers of different entities sharing the
  organisation that agree on email or tax number: those may share one contact.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from admin_jobs.errors import JobError, JobSkipped, PermanentJobError
from admin_jobs.handlers import JobSuccess, Outcome
from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobTrigger
from admin_jobs.services import JobSpec, job_enqueue
from billing.models import Customer
from bms import clock
from xero_integration import client as xero
from xero_integration.models import (
    SyncDirection,
    SyncExclusion,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
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

CONTACT_NUMBER_PREFIX = "BMS-C"
CONTACT_OPERATIONS = ("PUT /Contacts", "POST /Contacts")
NAME_TAKEN = "is already assigned to another contact"
# Xero's exact wording for a taken ContactNumber is not confirmed (xero-api-notes.md §7): match
# either spelling, case-insensitively.
NUMBER_TAKEN_MARKERS = ("contact number", "contactnumber")
NOT_FOUND = "could not be found"


def customer_contact_number(customer: Customer) -> str:
    return f"{CONTACT_NUMBER_PREFIX}{customer.pk}"


def contact_url(*, tenant_id: str, contact_id: str) -> str:
    return str(settings.XERO_CONTACT_URL_TEMPLATE).format(
        tenant_id=tenant_id, contact_id=contact_id
    )


def customer_snapshot(customer: Customer) -> dict[str, str]:
    """The customer's fields as Xero sees them; the panel compares it with the last push."""
    return {
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "tax number": customer.tax_number,
        "account number": customer.account_number,
        "currency": customer.currency,
        "payment terms": f"{customer.payment_terms_day} {customer.payment_terms_type}",
        "street address": " | ".join(
            [customer.street_line1, customer.street_line2, customer.street_city,
             customer.street_region, customer.street_postal_code, customer.street_country]
        ),
        "postal address": " | ".join(
            [customer.postal_line1, customer.postal_line2, customer.postal_city,
             customer.postal_region, customer.postal_postal_code, customer.postal_country]
        ),
    }  # fmt: skip


def customer_contact_data(*, customer: Customer, contact_id: str | None) -> xero.ContactData:
    def address(prefix: str) -> xero.AddressData | None:
        values = xero.AddressData(
            line1=getattr(customer, f"{prefix}_line1"),
            line2=getattr(customer, f"{prefix}_line2"),
            city=getattr(customer, f"{prefix}_city"),
            region=getattr(customer, f"{prefix}_region"),
            postal_code=getattr(customer, f"{prefix}_postal_code"),
            country=getattr(customer, f"{prefix}_country"),
        )
        return values if any(dataclasses.astuple(values)) else None

    return xero.ContactData(
        contact_id=contact_id,
        name=customer.name,
        contact_number=customer_contact_number(customer),
        email=customer.email,
        phone=customer.phone,
        tax_number=customer.tax_number,
        account_number=customer.account_number,
        currency=customer.currency,
        terms_type=customer.payment_terms_type,
        terms_day=customer.payment_terms_day,
        street=address("street"),
        postal=address("postal"),
    )


# --- Enqueueing ---------------------------------------------------------------------------------


def customer_push_enqueue(
    *,
    customer: Customer,
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
    parent: BackgroundJob | None = None,
) -> BackgroundJob:
    """Queue a push of the customer; a second request before it starts collapses into it.
    Call inside the transaction of the change that causes it (the job engine's rule)."""
    spec = customer_push_spec(customer=customer, triggered_by=triggered_by, user=user)
    with transaction.atomic():
        return job_enqueue(**vars(spec), parent=parent)


def customer_push_spec(
    *, customer: Customer, triggered_by: str, user: AbstractBaseUser | None = None
) -> JobSpec:
    """The customer's contact push, for job_enqueue_many."""
    return JobSpec(
        kind=JobKind.PUSH_CONTACT,
        entity=customer.entity,
        target=customer,
        description=f"Customer {customer.name}"[:300],
        direction=JobDirection.EXPORT,
        triggered_by=triggered_by,
        user=user,
    )


def customer_is_linked(customer: Customer) -> bool:
    return XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk
    ).exists()


def customer_after_change(*, customer: Customer, user: AbstractBaseUser | None = None) -> None:
    """A synced customer was edited: push the change (BMS is the master)."""
    if customer_is_linked(customer):
        customer_push_enqueue(customer=customer, triggered_by=JobTrigger.SYSTEM, user=user)


# --- The push -----------------------------------------------------------------------------------


@dataclass
class _Pending:
    job: BackgroundJob
    customer: Customer
    link: XeroRecordLink | None


class _Batch:
    """The state of one batch handler run; outcomes are filled in as elements settle."""

    def __init__(self, api: xero.XeroClient, connection: XeroConnection) -> None:
        self.api = api
        self.connection = connection
        self.content_type = ContentType.objects.get_for_model(Customer)
        self.outcomes: dict[int, Outcome] = {}
        self.to_update: list[_Pending] = []

    # Links ---------------------------------------------------------------------------------

    def link(self, customer: Customer, contact_id: str, *, pushed: bool) -> XeroRecordLink:
        now = clock.now()
        defaults: dict[str, Any] = {
            "entity": customer.entity,
            "tenant_id": self.api.tenant_id,
            "xero_id": contact_id,
            "xero_number": customer_contact_number(customer),
        }
        if pushed:
            defaults.update(last_pushed_at=now, pushed_snapshot=customer_snapshot(customer))
        link, _ = XeroRecordLink.objects.update_or_create(
            content_type=self.content_type, object_id=customer.pk, defaults=defaults
        )
        return link

    def success(self, item: _Pending, contact_id: str, **result: Any) -> None:
        self.outcomes[item.job.pk] = JobSuccess(
            result={"contact_id": contact_id, **result},
            external_url=contact_url(tenant_id=self.api.tenant_id, contact_id=contact_id),
        )

    # Sending -------------------------------------------------------------------------------

    def send(
        self, operation: str, items: list[_Pending], data: list[xero.ContactData]
    ) -> list[xero.ContactResult] | None:
        """Store, then send one request; returns per-element results, or None after recording a
        transient failure (or the rate limiter's wait) on every item."""
        try:
            # The limiter is asked first: a refusal stores nothing.
            with self.api.reserved():
                request = xero_request_record(
                    connection=self.connection,
                    operation=operation,
                    body=[dataclasses.asdict(d) for d in data],
                    members=[Member(job_id=i.job.pk, object_id=i.customer.pk) for i in items],
                )
                return self.send_stored(request, items)
        except JobError as exc:
            for item in items:
                self.outcomes[item.job.pk] = exc
            return None

    def send_stored(self, request: Any, items: list[_Pending]) -> list[xero.ContactResult] | None:
        method = (
            self.api.contacts_create
            if request.operation == "PUT /Contacts"
            else self.api.contacts_update
        )

        def send(body: list[dict[str, Any]], key: str) -> list[xero.ContactResult]:
            contacts = [xero.ContactData.from_json(element) for element in body]
            return method(contacts=contacts, idempotency_key=key)

        try:
            return xero_request_send(request=request, send=send)
        except JobError as exc:
            for item in items:
                self.outcomes[item.job.pk] = exc
            return None

    # Element outcomes ----------------------------------------------------------------------

    def created(self, item: _Pending, result: xero.ContactResult) -> None:
        if result.contact_id:
            self.link(item.customer, result.contact_id, pushed=True)
            self.success(item, result.contact_id, created=True)
        elif any(
            marker in message.lower() and "already" in message.lower()
            for message in result.errors
            for marker in NUMBER_TAKEN_MARKERS
        ):
            # Our own ContactNumber is taken: an earlier attempt created it. That settles it
            # before any name matching.
            self.adopt_by_number(item, result)
        elif any(NAME_TAKEN in message for message in result.errors):
            self.name_taken(item, result)
        else:
            self.refused(item, result.errors)

    def updated(self, item: _Pending, result: xero.ContactResult) -> None:
        assert item.link is not None
        if result.contact_id and result.status == "ARCHIVED":
            self.link(item.customer, result.contact_id, pushed=True)
            self.outcomes[item.job.pk] = PermanentJobError(
                f"The Xero contact for {item.customer.name} is archived in Xero. Restore it in "
                "Xero and sync again, or use Delete Integration here and sync to create a new "
                "contact.",
                detail={"contact_id": result.contact_id, "status": result.status},
            )
        elif result.contact_id:
            self.link(item.customer, result.contact_id, pushed=True)
            self.success(item, result.contact_id, updated=True)
        elif any(NOT_FOUND in message for message in result.errors):
            self.outcomes[item.job.pk] = PermanentJobError(
                f"The Xero contact for {item.customer.name} ({item.link.xero_id}) was deleted in "
                "Xero. Use Delete Integration here, then sync again to create a new contact.",
                detail={"xero_errors": result.errors},
            )
        else:
            self.refused(item, result.errors)

    def refused(self, item: _Pending, errors: list[str]) -> None:
        self.outcomes[item.job.pk] = PermanentJobError(
            f"Xero refused the contact for {item.customer.name}: {'; '.join(errors)} Correct the "
            "customer in BMS and sync again.",
            detail={"xero_errors": errors},
        )

    def name_taken(self, item: _Pending, result: xero.ContactResult) -> None:
        """Xero already has an active contact with this name: link to it, share it, or report
        a clash naming both records."""
        existing = _active_contact_named(self.api, item.customer.name)
        if existing is None:
            self.refused(item, result.errors)
            return
        number = existing.contact_number
        if not number.startswith(CONTACT_NUMBER_PREFIX) or number == customer_contact_number(
            item.customer
        ):
            # Not another BMS customer's contact: it is ours (re-synced after unlinking, or a
            # contact made in Xero by hand). BMS is the master, so push our data onto it.
            item.link = self.link(item.customer, existing.contact_id, pushed=False)
            self.to_update.append(item)
            return
        other_id = _customer_id(number)
        other = (
            Customer.objects.select_related("entity").filter(pk=other_id).first()
            if other_id is not None
            else None
        )
        if other is not None and _may_share(item.customer, other, self.api.tenant_id):
            self.link(item.customer, existing.contact_id, pushed=True)
            self.success(item, existing.contact_id, shared_with=other.pk)
            return
        other_text = (
            f"BMS customer “{other.name}” of {other.entity.name} (#{other.pk})"
            if other is not None
            else f"a BMS customer that no longer exists ({number})"
        )
        self.outcomes[item.job.pk] = PermanentJobError(
            f"Name clash: {item.customer.name} (#{item.customer.pk}, {item.customer.entity.name}) "
            f"has the same name as the Xero contact “{existing.name}”, which belongs to "
            f"{other_text}. The two customers would collapse into one contact, so nothing was "
            "sent. Rename one of them in BMS (Xero contact names are unique), then sync again.",
            detail={"xero_errors": result.errors, "contact_id": existing.contact_id,
                    "contact_number": number},
        )  # fmt: skip

    def adopt_by_number(self, item: _Pending, result: xero.ContactResult) -> None:
        found = _contact_by_number(self.api, customer_contact_number(item.customer))
        if found is None:
            self.refused(item, result.errors)
            return
        item.link = self.link(item.customer, found.contact_id, pushed=False)
        self.to_update.append(item)


def _active_contact_named(api: xero.XeroClient, name: str) -> xero.XeroContactRecord | None:
    escaped = name.lower().replace("\\", "\\\\").replace('"', '\\"')
    for contact in api.contacts_get(where=f'Name.ToLower()=="{escaped}"'):
        if contact.status == "ACTIVE":
            return contact
    return None


def _contact_by_number(api: xero.XeroClient, number: str) -> xero.XeroContactRecord | None:
    found = api.contacts_get(where=f'ContactNumber=="{number}"', include_archived=True)
    return found[0] if found else None


def _customer_id(contact_number: str) -> int | None:
    suffix = contact_number.removeprefix(CONTACT_NUMBER_PREFIX)
    return int(suffix) if suffix.isdigit() else None


def _may_share(customer: Customer, other: Customer, tenant_id: str) -> bool:
    """Customers of different entities sharing one organisation may share a contact when they
    agree on email or tax number: they are the same business."""
    if other.entity_id == customer.entity_id:
        return False
    shares_org = XeroEntityLink.objects.filter(entity=other.entity, tenant_id=tenant_id).exists()
    same_email = bool(customer.email) and customer.email.lower() == other.email.lower()
    same_tax = bool(customer.tax_number) and customer.tax_number == other.tax_number
    return shares_org and (same_email or same_tax)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def customers_push(*, jobs: list[BackgroundJob]) -> dict[int, Outcome]:
    """Push the jobs' customers in at most two requests (creates, updates) of ≤ 50 elements,
    recording each element's outcome on its own job."""
    outcomes: dict[int, Outcome] = {}
    content_type = ContentType.objects.get_for_model(Customer)
    customers = Customer.objects.select_related("entity").in_bulk(
        [job.target_object_id for job in jobs if job.target_object_id]
    )
    excluded = dict(
        SyncExclusion.objects.filter(
            content_type=content_type,
            object_id__in=list(customers),
            direction=SyncDirection.EXPORT,
        ).values_list("object_id", "reason")
    )
    live: list[BackgroundJob] = []
    for job in jobs:
        customer = customers.get(job.target_object_id or 0)
        if customer is None:
            outcomes[job.pk] = JobSkipped("The customer no longer exists in BMS.")
        elif customer.pk in excluded:
            outcomes[job.pk] = JobSkipped(f"skipped: {excluded[customer.pk]}")
        else:
            live.append(job)
    if not live:
        return outcomes

    entity = live[0].entity
    assert entity is not None
    api = xero_client_for_entity(entity=entity)  # connection-level waits apply to every job
    batch = _Batch(api, XeroConnection.objects.get(tenant_id=api.tenant_id))
    links = {
        link.object_id: link
        for link in XeroRecordLink.objects.filter(
            content_type=content_type, object_id__in=[job.target_object_id for job in live]
        )
    }
    items = {
        job.pk: _Pending(
            job=job, customer=customers[job.target_object_id or 0],
            link=links.get(job.target_object_id or 0),
        )
        for job in live
    }  # fmt: skip

    # 1. Requests whose reply was lost: replay them within Xero's window, else look up.
    unsettled = xero_requests_unsettled(job_ids=list(items), operation_prefix="")
    fresh: list[_Pending] = []
    replays: dict[int, Any] = {}
    for job_id, item in items.items():
        request = unsettled.get(job_id)
        if request is None or request.operation not in CONTACT_OPERATIONS:
            fresh.append(item)
        elif xero_request_is_replayable(request):
            replays[request.pk] = request
        else:
            xero_request_mark(request=request, outcome="superseded")
            if item.link is None:
                found = _contact_by_number(api, customer_contact_number(item.customer))
                if found is not None:
                    item.link = batch.link(item.customer, found.contact_id, pushed=False)
            fresh.append(item)
    for request in replays.values():
        members = xero_request_members(request)
        in_batch = [items[m.job_id] for m in members if m.job_id in items]
        results = batch.send_stored(request, in_batch)
        if results is None:
            # Xero caches errors per key: settle by look-up and a new key next time.
            xero_request_mark(request=request, outcome="superseded")
            continue
        for member, result in zip(members, results, strict=True):
            item = items.get(member.job_id) or _Pending(
                job=BackgroundJob(pk=member.job_id),
                customer=Customer.objects.select_related("entity").get(pk=member.object_id),
                link=None,
            )
            if request.operation == "PUT /Contacts":
                batch.created(item, result)
            else:
                item.link = item.link or links.get(member.object_id)
                if item.link is not None:
                    batch.updated(item, result)

    # 2. Creates (never synced: no look-up call) and updates (BMS overwrites Xero's copy).
    creates = [item for item in fresh if item.link is None]
    updates = [item for item in fresh if item.link is not None]
    for chunk in _chunks(creates, 50):
        data = [customer_contact_data(customer=i.customer, contact_id=None) for i in chunk]
        results = batch.send("PUT /Contacts", chunk, data)
        for item, result in zip(chunk, results or [], strict=False):
            batch.created(item, result)
    for chunk in _chunks(updates + batch.to_update, 50):
        _send_updates(batch, chunk)
    batch.to_update = []
    return {**outcomes, **{k: v for k, v in batch.outcomes.items() if k in items}}


def _send_updates(batch: _Batch, chunk: list[_Pending]) -> None:
    # One look first (≤ 50 ids, within Xero's practical IDs limit, notes §4): an update POSTed
    # to an archived contact would change it in Xero and only then be reported.
    ids = [item.link.xero_id for item in chunk if item.link is not None]
    found = {c.contact_id: c for c in batch.api.contacts_get(ids=ids, include_archived=True)}
    sendable = []
    for item in chunk:
        assert item.link is not None
        contact = found.get(item.link.xero_id)
        if contact is None:
            batch.outcomes[item.job.pk] = PermanentJobError(
                f"The Xero contact for {item.customer.name} ({item.link.xero_id}) was deleted in "
                "Xero. Use Delete Integration here, then sync again to create a new contact.",
                detail={"contact_id": item.link.xero_id},
            )
        elif contact.status != "ACTIVE":
            batch.outcomes[item.job.pk] = PermanentJobError(
                f"The Xero contact for {item.customer.name} is archived in Xero. Restore it in "
                "Xero and sync again, or use Delete Integration here and sync to create a new "
                "contact.",
                detail={"contact_id": item.link.xero_id, "status": contact.status},
            )
        else:
            sendable.append(item)
    if not sendable:
        return
    chunk = sendable
    data = [
        customer_contact_data(customer=item.customer, contact_id=item.link.xero_id)
        for item in chunk
        if item.link is not None
    ]
    results = batch.send("POST /Contacts", chunk, data)
    for item, result in zip(chunk, results or [], strict=False):
        batch.updated(item, result)
