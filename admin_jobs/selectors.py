"""Read-side queries for the Background Jobs pages, the banner and the record pages.

List selectors return unevaluated querysets for the paginator; each tab's condition and the
default ordering (newest id first) are served by indexes, so COUNT(*) and a page stay fast on
100,000 jobs.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, Count, Model, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone

from admin_jobs.models import (
    FINISHED_STATES,
    UNFINISHED_STATES,
    BackgroundJob,
    JobAttempt,
    JobState,
)


class JobTab:
    QUEUE = "queue"
    HISTORY = "history"
    UNRESOLVED = "unresolved"

    LABELS: dict[str, str] = {
        QUEUE: "Export queue",
        HISTORY: "Import/Export history",
        UNRESOLVED: "Unresolved errors",
    }


def _unresolved_condition() -> Q:
    # Exactly the condition of the partial index job_unresolved.
    return Q(state=JobState.FAILED, resolved_at__isnull=True, parent__isnull=True)


@dataclass(frozen=True)
class JobFilters:
    entity_id: int | None = None
    kind: str = ""
    state: str = ""
    date_from: date | None = None
    date_to: date | None = None
    search: str = ""


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def job_list(*, tab: str, filters: JobFilters | None = None) -> QuerySet[BackgroundJob]:
    """Top-level jobs of one tab (a bulk job's parts are shown on its detail page)."""
    filters = filters or JobFilters()
    jobs = BackgroundJob.objects.filter(parent__isnull=True)
    if tab == JobTab.QUEUE:
        jobs = jobs.filter(state__in=UNFINISHED_STATES)
    elif tab == JobTab.HISTORY:
        jobs = jobs.filter(state__in=FINISHED_STATES)
    elif tab == JobTab.UNRESOLVED:
        jobs = jobs.filter(_unresolved_condition())
    else:
        raise ValueError(f"Unknown tab {tab!r}")
    if filters.entity_id is not None:
        jobs = jobs.filter(entity_id=filters.entity_id)
    if filters.kind:
        jobs = jobs.filter(kind=filters.kind)
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    if filters.date_from:
        jobs = jobs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        jobs = jobs.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.search:
        jobs = jobs.filter(description__icontains=filters.search)
    return jobs.select_related("entity", "triggered_by_user").order_by("-id")


def job_unresolved_count() -> int:
    return BackgroundJob.objects.filter(_unresolved_condition()).count()


def job_get(*, job_id: int) -> BackgroundJob | None:
    return (
        BackgroundJob.objects.select_related(
            "entity",
            "triggered_by_user",
            "resolved_by",
            "parent",
            "depends_on",
            "target_content_type",
        )
        .filter(pk=job_id)
        .first()
    )


def job_attempts(*, job: BackgroundJob) -> QuerySet[JobAttempt]:
    return JobAttempt.objects.filter(job=job).order_by("number")


def job_children_summary(*, job: BackgroundJob, limit: int = 100) -> dict[str, Any]:
    """Counts of a bulk job's parts by state, and the first `limit` parts, failed ones first."""
    children = BackgroundJob.objects.filter(parent=job)
    counts = dict(children.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    failed_first = Case(When(state=JobState.FAILED, then=Value(0)), default=Value(1))
    shown = list(children.order_by(failed_first, "id")[:limit])
    return {"counts": counts, "total": sum(counts.values()), "shown": shown}


def job_latest_for_target(*, obj: Model) -> BackgroundJob | None:
    """The newest job about `obj`, for its record page (state, error in red, Xero link)."""
    content_type = ContentType.objects.get_for_model(obj)
    return (
        BackgroundJob.objects.filter(target_content_type=content_type, target_object_id=obj.pk)
        .order_by("-id")
        .first()
    )


def job_banner_for_user(*, user: AbstractBaseUser | AnonymousUser) -> dict[str, str] | None:
    """The red banner on every page while sync errors are unresolved. One indexed COUNT, plus one
    row when there is a single failure (so the link can go straight to its record)."""
    if not user.is_authenticated:
        return None
    unresolved = BackgroundJob.objects.filter(_unresolved_condition())
    count = unresolved.count()
    if not count:
        return None
    if count == 1:
        only = unresolved.values("id", "target_url").first()
        if only is None:  # resolved between the two queries
            return None
        url = only["target_url"] or reverse("admin_jobs:job_detail", args=[only["id"]])
    else:
        url = reverse("admin_jobs:job_list") + "?tab=unresolved"
    noun = "record" if count == 1 else "records"
    return {
        "text": f"{count} {noun} failed to sync with Xero",
        "url": url,
        "link_text": "View errors",
    }
