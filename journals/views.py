"""Admin → Journals and the reconciliation report. Views stay thin: services decide."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from admin_jobs.models import BackgroundJob, JobKind, JobTrigger
from billing.models import Entity
from core.permissions import admin_required
from journals.models import CostOfSalesJournal, JournalStatus
from journals.reconciliation import xero_reconcile_enqueue
from journals.selectors import journal_list as journal_list_select
from journals.selectors import journal_tenant_ids, xero_journal_url
from journals.services import cost_of_sales_journal_push_enqueue, cost_of_sales_journal_rebuild
from xero_integration.models import XeroConnection

PAGE_SIZE = 100


@require_GET
@admin_required
def journal_list(request: HttpRequest) -> HttpResponse:
    entity = None
    if request.GET.get("entity"):
        entity = Entity.objects.filter(pk=request.GET["entity"]).first()
    status = request.GET.get("status") or None
    journals = list(journal_list_select(entity=entity, status=status)[:PAGE_SIZE])
    tenants = journal_tenant_ids(entity_ids=list({j.entity_id for j in journals}))
    rows = [
        {
            "journal": journal,
            "xero_url": xero_journal_url(
                journal_id=journal.xero_journal_id, tenant_id=tenants.get(journal.entity_id)
            ),
        }
        for journal in journals
    ]
    return render(
        request,
        "journals/journal_list.html",
        {
            "rows": rows,
            "entities": Entity.objects.filter(xero_link__isnull=False).order_by("name"),
            "statuses": JournalStatus.choices,
            "selected_entity": entity,
            "selected_status": status or "",
        },
    )


@require_GET
@admin_required
def journal_detail(request: HttpRequest, journal_id: int) -> HttpResponse:
    journal = get_object_or_404(CostOfSalesJournal.objects.select_related("entity"), pk=journal_id)
    same_day = CostOfSalesJournal.objects.filter(
        entity=journal.entity, journal_date=journal.journal_date
    ).order_by("sequence")
    jobs = BackgroundJob.objects.filter(
        kind=JobKind.COST_OF_SALES_JOURNAL,
        target_content_type__model="costofsalesjournal",
        target_object_id=journal.pk,
    ).order_by("-id")[:20]
    tenant_id = journal_tenant_ids(entity_ids=[journal.entity_id]).get(journal.entity_id)
    return render(
        request,
        "journals/journal_detail.html",
        {
            "journal": journal,
            "lines": journal.lines.order_by("-amount"),
            "same_day": same_day,
            "jobs": jobs,
            "xero_url": xero_journal_url(journal_id=journal.xero_journal_id, tenant_id=tenant_id),
        },
    )


@require_POST
@admin_required
def journal_rebuild(request: HttpRequest, journal_id: int) -> HttpResponse:
    journal = get_object_or_404(CostOfSalesJournal.objects.select_related("entity"), pk=journal_id)
    try:
        rebuilt = cost_of_sales_journal_rebuild(journal=journal)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Rebuilt {rebuilt}: {rebuilt.get_status_display().lower()}.")
    return redirect("journals:detail", journal_id=journal.pk)


@require_POST
@admin_required
def journal_push(request: HttpRequest, journal_id: int) -> HttpResponse:
    journal = get_object_or_404(CostOfSalesJournal.objects.select_related("entity"), pk=journal_id)
    try:
        job = cost_of_sales_journal_push_enqueue(journal=journal, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Pushing {journal} to Xero (job #{job.pk}).")
    return redirect("journals:detail", journal_id=journal.pk)


@require_GET
@admin_required
def reconciliation(request: HttpRequest) -> HttpResponse:
    connections = list(XeroConnection.objects.order_by("tenant_name"))
    reports = []
    for connection in connections:
        job = (
            BackgroundJob.objects.filter(
                kind=JobKind.RECONCILE,
                target_content_type__model="xeroconnection",
                target_object_id=connection.pk,
            )
            .order_by("-id")
            .first()
        )
        detail = (job.error_detail or job.result or {}) if job else {}
        reports.append(
            {
                "connection": connection,
                "job": job,
                "checked": detail.get("checked", {}) if isinstance(detail, dict) else {},
                "drifts": detail.get("drifts", []) if isinstance(detail, dict) else [],
            }
        )
    return render(request, "journals/reconciliation.html", {"reports": reports})


@require_POST
@admin_required
def reconciliation_run(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_object_or_404(XeroConnection, pk=connection_id)
    job = xero_reconcile_enqueue(
        connection=connection,
        triggered_by=JobTrigger.USER,
        user=request.user,
    )
    if job is None:
        messages.error(request, f"No entity syncs with {connection.tenant_name}.")
    else:
        messages.success(request, f"Reconciling {connection.tenant_name} (job #{job.pk}).")
    return redirect("journals:reconciliation")
