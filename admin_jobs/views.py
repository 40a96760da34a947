"""Admin → Background Jobs. Views parse input with a form, call one selector or service, render.

Admins only. Every action is POST-only (GET answers 405) and CSRF-protected by the middleware; the
pages work without JavaScript.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from admin_jobs import selectors, services
from admin_jobs.forms import JobFilterForm, JobResolveForm
from admin_jobs.models import BackgroundJob
from admin_jobs.selectors import JobTab
from core.permissions import admin_required


def _job_or_404(pk: int) -> BackgroundJob:
    job = selectors.job_get(job_id=pk)
    if job is None:
        raise Http404("No such job.")
    return job


def _detail(job: BackgroundJob) -> HttpResponse:
    return redirect("admin_jobs:job_detail", pk=job.pk)


@require_GET
@admin_required
def job_list(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", JobTab.QUEUE)
    if tab not in JobTab.LABELS:
        tab = JobTab.QUEUE
    filter_form = JobFilterForm(request.GET or None)
    filters = filter_form.filters()
    jobs = selectors.job_list(tab=tab, filters=filters)
    page = Paginator(jobs, settings.BMS_LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    # The current filters, to keep in tab, pagination and "Retry all failed" links.
    kept = request.GET.copy()
    kept.pop("page", None)
    kept.pop("tab", None)
    return render(
        request,
        "admin_jobs/job_list.html",
        {
            "tab": tab,
            "tabs": list(JobTab.LABELS.items()),
            "filter_form": filter_form,
            "page": page,
            "filter_query": kept.urlencode(),
            "unresolved_count": selectors.job_unresolved_count(),
        },
    )


@require_GET
@admin_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    return render(
        request,
        "admin_jobs/job_detail.html",
        {
            "job": job,
            "attempts": selectors.job_attempts(job=job),
            "children": selectors.job_children_summary(job=job) if job.progress_total else None,
            "resolve_form": JobResolveForm(),
        },
    )


@require_POST
@admin_required
def job_retry(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    try:
        runs = services.job_retry(job=job, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _detail(job)
    if runs.pk != job.pk:
        messages.info(request, f"Job #{runs.pk} is already queued for this record; it will run.")
        return _detail(runs)
    messages.success(request, f"Job #{job.pk} will run again shortly.")
    return _detail(job)


@require_POST
@admin_required
def job_retry_all_failed(request: HttpRequest) -> HttpResponse:
    filters = JobFilterForm(request.POST).filters()
    retried = services.job_retry_all_failed(user=request.user, filters=filters)  # type: ignore[arg-type]
    messages.success(request, f"{retried} failed job{'s' if retried != 1 else ''} queued again.")
    return redirect(reverse("admin_jobs:job_list") + f"?tab={JobTab.UNRESOLVED}")


@require_POST
@admin_required
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    try:
        services.job_cancel(job=job, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Job #{job.pk} cancelled.")
    return _detail(job)


@require_POST
@admin_required
def job_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job_or_404(pk)
    form = JobResolveForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "admin_jobs/job_detail.html",
            {
                "job": job,
                "attempts": selectors.job_attempts(job=job),
                "children": (
                    selectors.job_children_summary(job=job) if job.progress_total else None
                ),
                "resolve_form": form,
            },
            status=400,
        )
    try:
        services.job_resolve(
            job=job,
            user=request.user,  # type: ignore[arg-type]
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Job #{job.pk} marked resolved.")
    return _detail(job)
