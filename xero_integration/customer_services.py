"""Customer-facing Xero actions: status, unlink, do-not-export/import, bulk sync, import."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from admin_jobs.handlers import JobSuccess
from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobTrigger
from admin_jobs.selectors import job_latest_for_target
from admin_jobs.services import JobChild, job_enqueue, job_enqueue_children
from billing.models import Customer, Entity
from billing.services import customer_create
from bms import clock
from xero_integration.contact_sync import (
    contact_url,
    customer_contact_number,
    customer_snapshot,
)
from xero_integration.models import SyncDirection, SyncExclusion, XeroEntityLink, XeroRecordLink
from xero_integration.services import xero_client_for_entity

# --- Status -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncStatus:
    """What the Xero Integration panel and the status icon show for one record."""

    colour: str  # blue: BMS and Xero agree; red: BMS has unpushed changes; grey: never synced
    link: XeroRecordLink | None
    changed_fields: list[str]
    xero_url: str
    latest_job: BackgroundJob | None
    exclusions: dict[str, SyncExclusion]

    @property
    def label(self) -> str:
        if self.link is None:
            return "Never synced with Xero"
        if self.changed_fields:
            return "Changed in BMS since the last push: " + ", ".join(self.changed_fields)
        return "BMS and Xero agree"


def record_link(obj: Model) -> XeroRecordLink | None:
    return XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).first()


def sync_exclusions(obj: Model) -> dict[str, SyncExclusion]:
    rows = SyncExclusion.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).select_related("set_by")
    return {row.direction: row for row in rows}


def customer_sync_status(*, customer: Customer) -> SyncStatus:
    link = record_link(customer)
    changed: list[str] = []
    if link is not None and link.pushed_snapshot:
        current = customer_snapshot(customer)
        changed = [k for k, v in current.items() if link.pushed_snapshot.get(k) != v]
    return SyncStatus(
        colour="grey" if link is None else ("red" if changed else "blue"),
        link=link,
        changed_fields=changed,
        xero_url=contact_url(tenant_id=link.tenant_id, contact_id=link.xero_id) if link else "",
        latest_job=job_latest_for_target(obj=customer),
        exclusions=sync_exclusions(customer),
    )


# --- Unlink and exclusions ---------------------------------------------------------------------


def record_unlink(*, obj: Model, user: AbstractBaseUser | None) -> bool:
    """Delete Integration: remove only BMS's link; the Xero record stays. A later sync matches
    it by name (contacts) or creates a new record."""
    deleted, _ = XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk
    ).delete()
    return bool(deleted)


def sync_exclusion_set(
    *, obj: Model, direction: str, reason: str, user: AbstractBaseUser | None
) -> SyncExclusion:
    reason = (reason or "").strip()
    if direction not in SyncDirection.values:
        raise ValidationError({"direction": f"'{direction}' is not export or import."})
    if not reason:
        raise ValidationError(
            {"reason": f"Say why this record must not be {direction}ed; the reason is shown "
                       "wherever it is skipped."}
        )  # fmt: skip
    row, _ = SyncExclusion.objects.update_or_create(
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        direction=direction,
        defaults={
            "reason": reason[:500],
            "set_by_id": user.pk if user is not None else None,
            "set_at": clock.now(),
        },
    )
    return row


def sync_exclusion_clear(*, obj: Model, direction: str) -> None:
    SyncExclusion.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk, direction=direction
    ).delete()


# --- Bulk sync ----------------------------------------------------------------------------------


def customers_bulk_sync_start(
    *, entity: Entity, customer_ids: list[int] | None, user: AbstractBaseUser | None
) -> BackgroundJob:
    """One bulk job whose parts push the customers (all of the entity's when ids is None)."""
    if customer_ids is not None:
        foreign = Customer.objects.filter(pk__in=customer_ids).exclude(entity=entity).count()
        if foreign:
            raise ValidationError(f"{foreign} of the chosen customers belong to another entity.")
        if not customer_ids:
            raise ValidationError("Choose at least one customer to sync.")
    what = "all customers" if customer_ids is None else f"{len(customer_ids)} customers"
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.BULK_CUSTOMER_SYNC,
            entity=entity,
            target=entity,
            description=f"Sync {what} of {entity.name} with Xero",
            direction=JobDirection.EXPORT,
            triggered_by=JobTrigger.USER,
            user=user,
            payload={"customer_ids": customer_ids},
        )


def _bulk_children(entity: Entity, customer_ids: list[int] | None) -> Iterator[JobChild]:
    customers = Customer.objects.filter(entity=entity, is_archived=False).only("id", "name")
    if customer_ids is not None:
        customers = customers.filter(pk__in=customer_ids)
    for customer in customers.order_by("pk").iterator(chunk_size=2000):
        yield JobChild(
            description=f"Customer {customer.name}"[:300],
            target=customer,
            kind=JobKind.PUSH_CONTACT,
        )


def customers_bulk_sync_run(*, job: BackgroundJob) -> JobSuccess:
    """The bulk job's own handler: adds one push per customer as its parts, in batches."""
    assert job.entity is not None
    if job.children.exists():
        # A retry of a parent whose parts were already added must not add them twice.
        return JobSuccess(result={"customers": job.children.count()})
    added = job_enqueue_children(
        parent=job, children=_bulk_children(job.entity, job.payload.get("customer_ids"))
    )
    return JobSuccess(result={"customers": added})


# --- Import from Xero ---------------------------------------------------------------------------

_SUFFIXES = re.compile(r"\b(ltd|limited|llc|inc|incorporated|co|company|corp|plc|pty)\b")


def name_key(name: str) -> str:
    """A name reduced for near matching: case, accents, punctuation, Ltd/Limited and the like."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = text.replace("&", " and ")
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    text = _SUFFIXES.sub(" ", text)
    return " ".join(text.split())


def contacts_import_preview(*, job: BackgroundJob) -> JobSuccess:
    """The import job's handler: read the organisation's customer and general contacts and
    match each against the entity's customers; the admin reviews the result before anything
    is written."""
    entity = job.entity
    assert entity is not None
    api = xero_client_for_entity(entity=entity)
    contacts = []
    page = 1
    while True:
        rows = api.contacts_get(page=page, page_size=1000)
        contacts += [c for c in rows if c.is_customer or not c.is_supplier]
        if len(rows) < 1000:
            break
        page += 1
    customers = list(Customer.objects.filter(entity=entity).only("id", "name", "email"))
    by_name = {c.name.lower(): c for c in customers}
    by_email = {c.email.lower(): c for c in customers if c.email}
    by_key = {name_key(c.name): c for c in customers}
    by_number = {customer_contact_number(c): c for c in customers}
    linked = set(
        XeroRecordLink.objects.filter(
            content_type=ContentType.objects.get_for_model(Customer), entity=entity
        ).values_list("xero_id", flat=True)
    )
    rows_out: list[dict[str, Any]] = []
    for contact in contacts:
        match, customer = "none", None
        for found in (
            by_number.get(contact.contact_number),
            by_name.get(contact.name.lower()),
            by_email.get(contact.email.lower()) if contact.email else None,
        ):
            if found is not None:
                match, customer = "exact", found
                break
        if customer is None and (near := by_key.get(name_key(contact.name))) is not None:
            match, customer = "near", near
        rows_out.append(
            {
                "contact_id": contact.contact_id,
                "name": contact.name,
                "email": contact.email,
                "contact_number": contact.contact_number,
                "status": contact.status,
                "match": match,
                "customer_id": customer.pk if customer else None,
                "customer_name": customer.name if customer else "",
                "already_linked": contact.contact_id in linked,
            }
        )
    return JobSuccess(result={"contacts": rows_out, "tenant_id": api.tenant_id})


def contacts_import_start(*, entity: Entity, user: AbstractBaseUser | None) -> BackgroundJob:
    if not XeroEntityLink.objects.filter(entity=entity, connection__isnull=False).exists():
        raise ValidationError(f"{entity.name} is not connected to Xero.")
    with transaction.atomic():
        return job_enqueue(
            kind=JobKind.IMPORT_CONTACTS,
            entity=entity,
            target=entity,
            description=f"Import customers from Xero into {entity.name} (review)",
            direction=JobDirection.IMPORT,
            triggered_by=JobTrigger.USER,
            user=user,
        )


@dataclass(frozen=True)
class ImportSummary:
    linked: int
    imported: int
    skipped: int


def contacts_import_apply(
    *, job: BackgroundJob, decisions: dict[str, str], user: AbstractBaseUser | None
) -> ImportSummary:
    """Apply the admin's review: per ContactID "link" (to the matched customer), "import" (as a
    new customer) or "skip". Writes only to BMS; running it again changes nothing."""
    entity = job.entity
    assert entity is not None and job.result
    content_type = ContentType.objects.get_for_model(Customer)
    tenant_id = job.result["tenant_id"]
    linked = imported = skipped = 0
    now = clock.now()
    with transaction.atomic():
        taken = set(
            XeroRecordLink.objects.filter(content_type=content_type, entity=entity)
            .select_for_update()
            .values_list("xero_id", flat=True)
        )
        for row in job.result["contacts"]:
            action = decisions.get(row["contact_id"], "skip")
            if action == "skip" or row["contact_id"] in taken:
                skipped += 1
                continue
            if action == "link":
                customer = Customer.objects.filter(pk=row["customer_id"], entity=entity).first()
                if customer is None:
                    raise ValidationError(f"{row['name']} has no matching customer to link to.")
            elif action == "import":
                customer = customer_create(
                    entity=entity, name=row["name"], email=row["email"] or ""
                )
            else:
                raise ValidationError(f"Unknown import action '{action}' for {row['name']}.")
            _, created = XeroRecordLink.objects.get_or_create(
                content_type=content_type,
                object_id=customer.pk,
                defaults={
                    "entity": entity, "tenant_id": tenant_id, "xero_id": row["contact_id"],
                    "xero_number": row["contact_number"], "last_pulled_at": now,
                },
            )  # fmt: skip
            if not created:
                skipped += 1
                continue
            taken.add(row["contact_id"])
            if action == "link":
                linked += 1
            else:
                imported += 1
    return ImportSummary(linked=linked, imported=imported, skipped=skipped)
