"""Xero actions on customers, invoices and credit notes, and the customer bulk sync and import."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from admin_jobs.models import BackgroundJob, JobKind, JobState
from billing.models import CreditNote, Customer, Entity, Invoice
from core.permissions import admin_required, staff_required
from xero_integration.contact_sync import customer_push_enqueue
from xero_integration.customer_services import (
    contacts_import_apply,
    contacts_import_start,
    customers_bulk_sync_start,
    record_unlink,
    sync_exclusion_clear,
    sync_exclusion_set,
)
from xero_integration.invoice_sync import credit_note_push_enqueue, invoice_push_enqueue
from xero_integration.record_status import SYNCABLE


def _record(model_key: str, pk: int) -> Model:
    model = SYNCABLE.get(model_key)
    if model is None:
        raise Http404("Not a record BMS syncs with Xero.")
    return get_object_or_404(model, pk=pk)


def _back(obj: Any) -> HttpResponse:
    return redirect(obj.get_absolute_url())


@require_POST
@staff_required
def record_sync(request: HttpRequest, model_key: str, pk: int) -> HttpResponse:
    obj = _record(model_key, pk)
    user = request.user if request.user.is_authenticated else None
    job: BackgroundJob | None = None
    with transaction.atomic():
        if isinstance(obj, Customer):
            job = customer_push_enqueue(customer=obj, user=user)
        elif isinstance(obj, Invoice):
            job = invoice_push_enqueue(invoice=obj, user=user)
        elif isinstance(obj, CreditNote):
            job = credit_note_push_enqueue(credit_note=obj, user=user)
    if job is None:
        messages.error(request, f"{obj} cannot be synced: its entity is not connected to Xero.")
    else:
        messages.success(request, f"Sync with Xero queued (job #{job.pk}).")
    return _back(obj)


@require_http_methods(["GET", "POST"])
@staff_required
def record_unlink_view(request: HttpRequest, model_key: str, pk: int) -> HttpResponse:
    obj = _record(model_key, pk)
    if request.method == "POST":
        user = request.user if request.user.is_authenticated else None
        if record_unlink(obj=obj, user=user):
            messages.success(
                request,
                f"The link between {obj} and Xero was deleted; the Xero record stays. A later "
                "sync matches it by name or creates a new one.",
            )
        else:
            messages.error(request, f"{obj} was not linked to Xero.")
        return _back(obj)
    return render(request, "xero_integration/unlink.html", {"record": obj})


@require_POST
@staff_required
def record_exclusion(request: HttpRequest, model_key: str, pk: int) -> HttpResponse:
    obj = _record(model_key, pk)
    direction = request.POST.get("direction", "")
    if request.POST.get("action") == "clear":
        sync_exclusion_clear(obj=obj, direction=direction)
        messages.success(request, "Cleared.")
        return _back(obj)
    try:
        user = request.user if request.user.is_authenticated else None
        exclusion = sync_exclusion_set(
            obj=obj,
            direction=direction,
            reason=request.POST.get("reason", ""),
            user=user,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{exclusion.get_direction_display()}: {exclusion.reason}")
    return _back(obj)


@require_http_methods(["GET", "POST"])
@admin_required
def customers_bulk_sync(request: HttpRequest) -> HttpResponse:
    entities = Entity.objects.filter(xero_link__connection__isnull=False).order_by("name")
    if request.method == "POST":
        ids = None if request.POST.get("scope") == "all" else [
            int(value) for value in request.POST.getlist("customer") if value.isdigit()
        ]  # fmt: skip
        entity_id = request.POST.get("entity") or None
        if entity_id is None and ids:
            owners = set(Customer.objects.filter(pk__in=ids).values_list("entity_id", flat=True))
            if len(owners) != 1:
                messages.error(
                    request,
                    "The selected customers belong to several entities: filter the list by one "
                    "entity first.",
                )
                return redirect("billing:customer_list")
            entity_id = str(owners.pop())
        if entity_id is None:
            messages.error(request, "Choose the customers to sync, or an entity to sync all.")
            return redirect("billing:customer_list")
        if not str(entity_id).isdigit():
            messages.error(request, "Choose an entity.")
            return redirect("billing:customer_list")
        entity = get_object_or_404(Entity, pk=int(entity_id))
        try:
            user = request.user if request.user.is_authenticated else None
            job = customers_bulk_sync_start(entity=entity, customer_ids=ids, user=user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            return redirect("xero_integration:bulk_progress", job_id=job.pk)
    return render(request, "xero_integration/bulk_sync.html", {"entities": entities})


@require_GET
@staff_required
def bulk_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(BackgroundJob, pk=job_id, kind=JobKind.BULK_CUSTOMER_SYNC)
    failed = job.children.filter(state=JobState.FAILED)
    return render(
        request,
        "xero_integration/bulk_progress.html",
        {"job": job, "failed_count": failed.count(), "failed": failed[:50]},
    )


@require_http_methods(["GET", "POST"])
@admin_required
def contacts_import(request: HttpRequest) -> HttpResponse:
    entities = Entity.objects.filter(xero_link__connection__isnull=False).order_by("name")
    if request.method == "POST":
        entity_value = request.POST.get("entity", "")
        if not entity_value.isdigit():
            messages.error(request, "Choose an entity.")
            return redirect("xero_integration:import_start")
        entity = get_object_or_404(Entity, pk=int(entity_value))
        try:
            user = request.user if request.user.is_authenticated else None
            job = contacts_import_start(entity=entity, user=user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            return redirect("xero_integration:import_review", job_id=job.pk)
    return render(request, "xero_integration/import_start.html", {"entities": entities})


@require_http_methods(["GET", "POST"])
@admin_required
def import_review(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(BackgroundJob, pk=job_id, kind=JobKind.IMPORT_CONTACTS)
    if request.method == "POST" and job.state == JobState.SUCCEEDED:
        decisions = {
            key.removeprefix("action-"): str(request.POST.get(key, "skip"))
            for key in request.POST
            if key.startswith("action-")
        }
        try:
            user = request.user if request.user.is_authenticated else None
            summary = contacts_import_apply(job=job, decisions=decisions, user=user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"Linked {summary.linked}, imported {summary.imported}, skipped {summary.skipped}.",
            )
            return redirect("billing:customer_list")
    rows = (job.result or {}).get("contacts", []) if job.state == JobState.SUCCEEDED else []
    return render(request, "xero_integration/import_review.html", {"job": job, "rows": rows})
