"""The Xero state of any synced BMS record, for the panel, the status icon and the list columns."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from admin_jobs.selectors import job_latest_for_target
from billing.models import CreditNote, Customer, Invoice
from xero_integration.customer_services import (
    SyncStatus,
    customer_sync_status,
    record_link,
    sync_exclusions,
)
from xero_integration.invoice_sync import document_prepush_problems, invoice_url

SYNCABLE: dict[str, type[Model]] = {
    "customer": Customer,
    "invoice": Invoice,
    "credit_note": CreditNote,
}


def model_key(obj: Model) -> str:
    for key, model in SYNCABLE.items():
        if isinstance(obj, model):
            return key
    raise ValueError(f"{type(obj).__name__} is not synced with Xero")


def record_sync_status(*, obj: Model) -> SyncStatus:
    if isinstance(obj, Customer):
        return customer_sync_status(customer=obj)
    link = record_link(obj)
    version = getattr(obj, "version", None)
    changed = ["lines or details"] if link is not None and link.pushed_version != version else []
    return SyncStatus(
        colour="grey" if link is None else ("red" if changed else "blue"),
        link=link,
        changed_fields=changed,
        xero_url=invoice_url(tenant_id=link.tenant_id, invoice_id=link.xero_id) if link else "",
        latest_job=job_latest_for_target(obj=obj),
        exclusions=sync_exclusions(obj),
    )


def record_panel_context(*, obj: Model) -> dict[str, Any]:
    status = record_sync_status(obj=obj)
    problems: list[str] = []
    if isinstance(obj, Invoice | CreditNote) and status.link is None:
        problems = document_prepush_problems(document=obj)
    return {
        "record": obj,
        "model_key": model_key(obj),
        "status": status,
        "prepush_problems": problems,
        "is_customer": isinstance(obj, Customer),
    }
