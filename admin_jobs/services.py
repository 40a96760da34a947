"""The job engine: enqueue, claim, run, record, sweep, and the admins' actions.

How it stays correct (reliability-notes.md §2):

* The job row is written in the caller's transaction; the Celery message is published only after
  commit and is merely a wake-up. A lost message is re-published by the sweeper; a duplicate finds
  nothing to claim. Batch kinds are woken once per batch: a wake-up whose job another batch took
  claims the next due job of the same kind and entity instead, if there is one.
* A worker runs a job only after one conditional UPDATE has taken its lease (job_claim).
  Outcomes are written only while the lease token still matches, so a worker whose lease was
  taken over cannot overwrite the new holder's result.
* Waits and retries are rows with a `not_before`, never long Celery countdowns (those are
  redelivered after the visibility timeout and run twice).
* Everything takes "now" from bms.clock so tests can move time.
"""

import logging
import os
import random
import socket
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from itertools import islice
from operator import or_
from typing import Any, cast

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Case, Exists, F, Field, Model, OuterRef, Q, Subquery, Value, When
from django.db.transaction import TransactionManagementError

from admin_jobs.errors import (
    JobError,
    JobSkipped,
    JobWait,
    PermanentJobError,
    TransientJobError,
)
from admin_jobs.handlers import BatchHandler, JobHandler, JobSuccess, Outcome, SingleHandler
from admin_jobs.handlers import job_handler_get as _handler_get
from admin_jobs.models import (
    UNFINISHED_STATES,
    UNSTARTED_STATES,
    BackgroundJob,
    JobAttempt,
    JobAttemptOutcome,
    JobKind,
    JobState,
    JobWaitKind,
)
from admin_jobs.selectors import JobFilters, JobTab, job_list
from admin_jobs.tasks import job_run_task
from billing.models import Entity
from bms import clock

logger = logging.getLogger(__name__)

# Back-off for transient failures: 30 s, 1 min, 2 min … capped at 1 h, plus up to 25 % jitter so
# jobs that failed together do not all come back in the same second. With the 24 h horizon a long
# Xero outage is retried about 30 times and heals within an hour of Xero coming back.
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 3600
RETRY_JITTER = 0.25
# A countdown this short is safe (far below the broker's visibility timeout); anything longer is
# left to the sweeper, which re-publishes the job once not_before has passed.
SHORT_WAIT_SECONDS = 5
# A wait for a time (Xero's rate-limit window: about a minute) is woken by a countdown instead of
# the 30-second sweeper, which left idle gaps in every minute of a backlog
# (bench/invoices_bench.py). Still far below the broker's 900 s visibility timeout, past which
# countdowns are re-delivered (reliability-notes.md §2.3). Retries after failures keep the
# sweeper: their back-off starts at 30 s and nothing is lost by waking them a little late.
TIMED_WAIT_COUNTDOWN_SECONDS = 65
# The sweeper re-publishes a due job only if nobody has published it for this long: its message
# may simply be waiting in the queue behind others.
REPUBLISH_AFTER = timedelta(seconds=60)
MIN_WAIT_SECONDS = 1
SWEEP_BATCH = 500
CHILD_INSERT_BATCH = 1000
# A job whose worker dies this many attempts in a row (OOM, segfault) is poison: stop retrying.
MAX_LOST_ATTEMPTS_IN_A_ROW = 3


def _jitter_fraction() -> float:
    """0 ≤ x < 1; a seam so tests can pin the back-off sequence."""
    return random.random()


def _lease() -> timedelta:
    return timedelta(seconds=settings.BMS_JOB_LEASE_SECONDS)


def _retry_horizon() -> timedelta:
    return timedelta(hours=settings.BMS_JOB_RETRY_HORIZON_HOURS)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_retry_delay_seconds(*, failure_streak: int, retry_after: float | None = None) -> float:
    """Seconds before retry number `failure_streak` (1 = after the first failure)."""
    delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (failure_streak - 1))
    delay = delay * (1 + RETRY_JITTER * _jitter_fraction())
    return max(delay, retry_after or 0)


# --- Publishing -------------------------------------------------------------------------------


def _publish(job_ids: list[int], countdown: float | None) -> None:
    for job_id in job_ids:
        if countdown:
            job_run_task.apply_async((job_id,), countdown=countdown)
        else:
            job_run_task.apply_async((job_id,))


# While a batch's outcomes are recorded, the wake-ups they cause (e.g. 50 invoices unblocked by
# 50 contact pushes) are held and sent once the batch is recorded, so the first one claims a full
# batch instead of each commit waking a batch of one.
_held_wake_ups: ContextVar[list[tuple[list[int], float | None]] | None] = ContextVar(
    "_held_wake_ups", default=None
)


def _publish_on_commit(job_ids: list[int], *, countdown: float | None = None) -> None:
    """Send the wake-ups after commit. robust=True: a broker outage must not break the caller's
    other on_commit callbacks; the jobs are committed and the sweeper will publish them."""
    if not job_ids:
        return
    ids = list(job_ids)
    held = _held_wake_ups.get()
    if held is not None:
        # Sent after the whole batch is recorded (job_run); a wake-up whose transaction rolled
        # back is harmless: the claim refuses a job that is not due.
        held.append((ids, countdown))
        return

    # A named function, not a partial: Django logs a failing robust callback by its __qualname__.
    def publish_job_wake_ups() -> None:
        _publish(ids, countdown)

    transaction.on_commit(publish_job_wake_ups, robust=True)


def _wake_countdown(
    *, not_before: datetime | None, now: datetime, longest: float = SHORT_WAIT_SECONDS
) -> float | None:
    """None when the sweeper should wake the job; else the countdown to publish with (0 = now)."""
    if not_before is None:
        return None
    wait = (not_before - now).total_seconds()
    if wait > longest:
        return None
    return max(wait, 0.0)


def _publish_wake_ups(jobs: list[BackgroundJob], *, countdown: float | None = None) -> None:
    """Wake these jobs once committed. A worker woken for a batch kind claims up to its
    batch_size due jobs of that kind and entity, and a wake-up whose job another batch took claims
    the next due one instead (job_run), so one wake-up per batch_size jobs does the work; the
    others would find nothing (49 of 50 did, about a quarter of a worker's time)."""
    groups: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for job in jobs:
        groups[(job.kind, job.entity_id)].append(job.pk)
    ids: list[int] = []
    for (kind, _entity_id), pks in groups.items():
        handler = _handler_get(kind=kind)
        ids += sorted(pks)[:: handler.batch_size if handler else 1]
    _publish_on_commit(sorted(ids), countdown=countdown)


# --- Enqueueing -------------------------------------------------------------------------------


def job_dedupe_key(*, kind: str, entity: Entity | None, target: Model | None) -> str:
    """Two jobs with the same key do the same work: kind + target, or kind + entity."""
    if target is not None:
        content_type = ContentType.objects.get_for_model(target)
        return f"{kind}:{content_type.app_label}.{content_type.model}:{target.pk}"
    return f"{kind}:entity:{entity.pk if entity is not None else '-'}"


def _target_url(target: Model | None) -> str:
    get_url = getattr(target, "get_absolute_url", None)
    return str(get_url()) if callable(get_url) else ""


def _dependency_wait_reason(dependency: BackgroundJob) -> str:
    return f"Waiting for: {dependency.get_kind_display()} — {dependency.description}"[:300]


def _dependency_failed_message(dependency: BackgroundJob) -> str:
    if dependency.state == JobState.FAILED:
        how = "failed"
        if dependency.error_message:
            how += f" — {dependency.error_message}"
    else:
        how = "was cancelled"
    if dependency.kind == JobKind.PUSH_CONTACT:
        return f"Sync the customer first: its contact push {how}"
    return f"Run {dependency.get_kind_display().lower()} — {dependency.description} first: it {how}"


@dataclass(frozen=True)
class _Start:
    state: str
    not_before: datetime | None
    wait_kind: str = JobWaitKind.NONE
    wait_reason: str = ""
    error_message: str = ""

    def apply(self, job: BackgroundJob, *, now: datetime) -> None:
        """Set a new (unsaved) row's starting state."""
        job.state = self.state
        job.not_before = self.not_before
        job.wait_kind = self.wait_kind
        job.wait_reason = self.wait_reason
        job.error_message = self.error_message
        if self.state == JobState.FAILED:
            job.finished_at = now


def _start_for(*, depends_on: BackgroundJob | None, not_before: datetime) -> _Start:
    """How a new or re-queued job starts, given its dependency.

    The dependency row is locked so this decision and the dependency's own finish are serialised:
    either we see it finished, or its finish sees our waiting row and wakes (or fails) it.
    """
    if depends_on is None:
        return _Start(state=JobState.QUEUED, not_before=not_before)
    dependency = BackgroundJob.objects.select_for_update().get(pk=depends_on.pk)
    return _start_after(dependency=dependency, not_before=not_before)


def _start_after(*, dependency: BackgroundJob | None, not_before: datetime) -> _Start:
    """_start_for with the dependency already read under its row lock."""
    if dependency is None:
        return _Start(state=JobState.QUEUED, not_before=not_before)
    if dependency.state in (JobState.SUCCEEDED, JobState.SKIPPED):
        return _Start(state=JobState.QUEUED, not_before=not_before)
    if dependency.state in UNFINISHED_STATES:
        return _Start(
            state=JobState.WAITING,
            not_before=None,
            wait_kind=JobWaitKind.DEPENDENCY,
            wait_reason=_dependency_wait_reason(dependency),
        )
    return _Start(
        state=JobState.FAILED,
        not_before=None,
        error_message=_dependency_failed_message(dependency),
    )


def _unstarted_for_key(dedupe_key: str) -> BackgroundJob | None:
    # Exactly the condition of the constraint job_one_unstarted_per_key.
    return BackgroundJob.objects.filter(
        dedupe_key=dedupe_key, state__in=UNSTARTED_STATES, attempts=0, parent__isnull=True
    ).first()


def _job_build(
    *,
    kind: str,
    entity: Entity | None,
    target: Model | None,
    description: str,
    direction: str,
    triggered_by: str,
    user: AbstractBaseUser | None,
    depends_on: BackgroundJob | None,
    payload: dict[str, Any] | None,
    parent: BackgroundJob | None,
    dedupe_key: str,
    now: datetime,
    size: int = 0,
) -> BackgroundJob:
    return BackgroundJob(
        kind=kind,
        direction=direction,
        entity=entity,
        target_content_type=(
            ContentType.objects.get_for_model(target) if target is not None else None
        ),
        target_object_id=target.pk if target is not None else None,
        target_url=_target_url(target),
        description=description[:300],
        dedupe_key=dedupe_key,
        triggered_by=triggered_by,
        triggered_by_user_id=user.pk if user is not None else None,
        depends_on=depends_on,
        payload=payload or {},
        parent=parent,
        progress_total=size,
        created_at=now,
        updated_at=now,
    )


def job_enqueue(
    *,
    kind: str,
    entity: Entity | None,
    target: Model | None = None,
    description: str,
    direction: str,
    triggered_by: str,
    user: AbstractBaseUser | None = None,
    depends_on: BackgroundJob | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    parent: BackgroundJob | None = None,
    dedupe_key: str | None = None,
) -> BackgroundJob:
    """Record a job in the caller's transaction and wake a worker once it commits.

    Must be called inside `transaction.atomic()` together with the change that causes it, so the
    job exists if and only if the change does. If a job for the same work (same `dedupe_key`, by
    default kind + target or kind + entity) exists that has never started, that job is returned
    and nothing new is written. If the previous job has started (it is running, or waiting to be
    retried), a follow-up is queued; it starts only after that one finishes.

    `dedupe_key` overrides the default key, for work whose identity is more than its target (e.g.
    a journal per entity and date). Payload must be small JSON; handlers read current data from
    the database. With `parent`, the job is added as one part of that bulk job and takes its
    entity, direction and trigger from it (see job_enqueue_children).
    """
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "job_enqueue() must run inside transaction.atomic(), together with the change that "
            "causes the job."
        )
    if parent is not None:
        child = JobChild(description=description, payload=payload, target=target, kind=kind)
        first, _added = _children_insert(parent=parent, children=[child], depends_on=depends_on)
        assert first is not None  # one part in, one part out
        return first

    now = clock.now()
    key = (
        dedupe_key
        if dedupe_key is not None
        else job_dedupe_key(kind=kind, entity=entity, target=target)
    )
    requested = not_before or now
    for _ in range(3):
        job = _job_build(
            kind=kind,
            entity=entity,
            target=target,
            description=description,
            direction=direction,
            triggered_by=triggered_by,
            user=user,
            depends_on=depends_on,
            payload=payload,
            parent=None,
            dedupe_key=key,
            now=now,
        )
        start = _start_for(depends_on=depends_on, not_before=requested)
        start.apply(job, now=now)
        countdown = (
            _wake_countdown(not_before=start.not_before, now=now)
            if start.state == JobState.QUEUED
            else None
        )
        job.published_at = now if countdown is not None else None
        try:
            # A savepoint, so a duplicate-key error leaves the caller's transaction usable.
            with transaction.atomic():
                job.save(force_insert=True)
        except IntegrityError:
            if not key:
                raise
            existing = _unstarted_for_key(key)
            if existing is not None:
                return existing
            # The job we collided with started in between; ours is now a follow-up. Try again.
            continue
        if countdown is not None:
            _publish_on_commit([job.pk], countdown=countdown or None)
        return job
    raise IntegrityError(f"Could not enqueue a {kind} job for key {key!r}.")


@dataclass(frozen=True)
class JobSpec:
    """One job for job_enqueue_many: job_enqueue's arguments, keyed by kind + target."""

    kind: str
    entity: Entity | None
    target: Model | None
    description: str
    direction: str
    triggered_by: str
    user: AbstractBaseUser | None = None
    depends_on: BackgroundJob | None = None


def job_enqueue_many(*, specs: list[JobSpec]) -> list[BackgroundJob]:
    """job_enqueue for many jobs in a few statements (a scheduled push of thousands of invoices
    took 7 ms per job one at a time). Same rules: inside the caller's transaction, a never-started
    job for the same work is returned instead of a new one, and a job whose dependency has not
    finished waits for it. Returns one job per spec, in order.

    If another transaction queues one of the same jobs meanwhile, the unique constraint refuses
    the whole insert and each job is queued on its own instead, with job_enqueue's handling.
    """
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "job_enqueue_many() must run inside transaction.atomic(), together with the change "
            "that causes the jobs."
        )
    now = clock.now()
    keys = [job_dedupe_key(kind=s.kind, entity=s.entity, target=s.target) for s in specs]
    known: dict[str, BackgroundJob] = {
        job.dedupe_key: job
        for job in BackgroundJob.objects.filter(
            dedupe_key__in=set(keys), state__in=UNSTARTED_STATES, attempts=0, parent__isnull=True
        )
    }
    dependencies = {
        job.pk: job
        for job in BackgroundJob.objects.select_for_update()
        .filter(pk__in={s.depends_on.pk for s in specs if s.depends_on is not None})
        .order_by("pk")
    }
    new: list[BackgroundJob] = []
    jobs: list[BackgroundJob] = []
    for spec, key in zip(specs, keys, strict=True):
        if key not in known:
            dependency = dependencies.get(spec.depends_on.pk) if spec.depends_on else None
            start = _start_after(dependency=dependency, not_before=now)
            job = _job_build(
                kind=spec.kind,
                entity=spec.entity,
                target=spec.target,
                description=spec.description,
                direction=spec.direction,
                triggered_by=spec.triggered_by,
                user=spec.user,
                depends_on=spec.depends_on,
                payload=None,
                parent=None,
                dedupe_key=key,
                now=now,
            )
            start.apply(job, now=now)
            job.published_at = now if start.state == JobState.QUEUED else None
            known[key] = job
            new.append(job)
        jobs.append(known[key])
    try:
        with transaction.atomic():
            BackgroundJob.objects.bulk_create(new)
    except IntegrityError:
        # JobSpec's fields are job_enqueue's arguments.
        return [job_enqueue(**vars(spec)) for spec in specs]
    _publish_wake_ups([job for job in new if job.state == JobState.QUEUED])
    return jobs


@dataclass(frozen=True)
class JobChild:
    """One part of a bulk job. `size` is how many records it covers (its share of the progress)."""

    description: str
    payload: dict[str, Any] | None = None
    target: Model | None = None
    size: int = 1
    kind: str | None = None  # defaults to the parent's kind

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("A part covers at least one record (size >= 1).")


def _children_insert(
    *,
    parent: BackgroundJob,
    children: Iterable[JobChild],
    depends_on: BackgroundJob | None = None,
    batch_size: int = CHILD_INSERT_BATCH,
) -> tuple[BackgroundJob | None, int]:
    """Insert parts in batches; returns the first part inserted and how many were inserted."""
    now = clock.now()
    first: BackgroundJob | None = None
    added = 0
    with transaction.atomic():
        # Locked so that a part finishing now cannot decide the parent is done while we add more.
        locked = BackgroundJob.objects.select_for_update().get(pk=parent.pk)
        if locked.is_finished:
            raise ValidationError(f"Job #{locked.pk} has finished; it cannot take more parts.")
        entity = locked.entity
        start = _start_for(depends_on=depends_on, not_before=now)
        total = 0
        iterator = iter(children)
        while batch := list(islice(iterator, batch_size)):
            rows = []
            for child in batch:
                kind = child.kind or locked.kind
                row = _job_build(
                    kind=kind,
                    entity=entity,
                    target=child.target,
                    description=child.description,
                    direction=locked.direction,
                    triggered_by=locked.triggered_by,
                    user=None,
                    depends_on=depends_on,
                    payload=child.payload,
                    parent=locked,
                    # Parts keep the per-target ordering but never collapse (see the constraint).
                    dedupe_key=(
                        job_dedupe_key(kind=kind, entity=entity, target=child.target)
                        if child.target is not None
                        else ""
                    ),
                    now=now,
                    size=child.size,
                )
                row.triggered_by_user_id = locked.triggered_by_user_id
                start.apply(row, now=now)
                row.published_at = now if start.state == JobState.QUEUED else None
                total += child.size
                rows.append(row)
            inserted = BackgroundJob.objects.bulk_create(rows)
            if start.state == JobState.QUEUED:
                _publish_wake_ups(inserted)
            # Keep only what the single-part caller needs; a 100,000-part job stays small here.
            first = first or inserted[0]
            added += len(inserted)
        fields: dict[str, Any] = {"progress_total": F("progress_total") + total, "updated_at": now}
        if start.state == JobState.FAILED:
            fields["progress_done"] = F("progress_done") + total
        if locked.state in UNSTARTED_STATES:
            # A parent created with its parts never runs a handler itself: it waits for them.
            fields.update(
                state=JobState.WAITING,
                not_before=None,
                wait_kind=JobWaitKind.CHILDREN,
                wait_reason="Waiting for its parts to finish",
            )
        BackgroundJob.objects.filter(pk=locked.pk).update(**fields)
        locked.refresh_from_db()
        if locked.state == JobState.WAITING and locked.wait_kind == JobWaitKind.CHILDREN:
            # Only when every part was born failed (its dependency had failed) is it done already.
            _parent_maybe_finish(parent=locked, now=now)
    return first, added


def job_enqueue_children(
    *,
    parent: BackgroundJob,
    children: Iterable[JobChild],
    batch_size: int = CHILD_INSERT_BATCH,
) -> int:
    """Add parts to a bulk job, inserting `batch_size` rows at a time from any iterable (a
    generator over 100,000 customers is never held in memory). Returns how many were added.

    Called in the request that creates the parent, the parent waits for its parts and never runs
    a handler; called from the parent's own handler, the parent waits once its handler returns.
    Either way it finishes when the last part does: succeeded, or failed saying how many failed.
    A parent handler that fails after adding parts runs again on retry, so it should add its parts
    only when `job.children.exists()` is False.
    """
    _first, added = _children_insert(parent=parent, children=children, batch_size=batch_size)
    return added


# --- Claiming ---------------------------------------------------------------------------------


def _earlier_unfinished() -> Exists:
    """An earlier job for the same work has not finished: jobs for one target run in order."""
    return Exists(
        BackgroundJob.objects.filter(
            dedupe_key=OuterRef("dedupe_key"),
            id__lt=OuterRef("id"),
            state__in=UNFINISHED_STATES,
        ).exclude(dedupe_key="")
    )


def _claim_fields(*, token: str, now: datetime) -> dict[str, Any]:
    return {
        "state": JobState.RUNNING,
        "lease_until": now + _lease(),
        "lease_token": token,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "updated_at": now,
        "wait_kind": JobWaitKind.NONE,
        "wait_reason": "",
        # Cleared so that, if this worker dies, the sweeper re-publishes once the lease expires.
        "published_at": None,
    }


def _attempts_open(*, jobs: list[BackgroundJob], token: str, now: datetime) -> None:
    worker = _worker_name()
    JobAttempt.objects.bulk_create(
        [
            JobAttempt(
                job=job,
                number=job.attempts,
                lease_token=token,
                worker=worker,
                started_at=now,
            )
            for job in jobs
        ]
    )


def job_claim(*, job_id: int) -> BackgroundJob | None:
    """Take the lease on a due job, or on a running job whose lease expired (its worker died).

    One conditional UPDATE decides; None means the message was a duplicate, early, for a job
    blocked behind an earlier one for the same target, or for a finished job — do nothing.
    """
    now = clock.now()
    token = uuid.uuid4().hex
    due = Q(state__in=UNSTARTED_STATES, not_before__lte=now)
    abandoned = Q(state=JobState.RUNNING, lease_until__lt=now)
    with transaction.atomic():
        claimed = (
            BackgroundJob.objects.filter(due | abandoned, pk=job_id)
            .exclude(_earlier_unfinished())
            .update(**_claim_fields(token=token, now=now))
        )
        if not claimed:
            return None
        job = BackgroundJob.objects.get(pk=job_id)
        # Only a job that ran before can have an attempt whose worker died.
        lost = job.attempts > 1 and (
            JobAttempt.objects.filter(job=job, outcome=JobAttemptOutcome.RUNNING)
            .exclude(lease_token=token)
            .update(
                outcome=JobAttemptOutcome.LOST,
                ended_at=now,
                error_message="The worker stopped before finishing (its lease expired); "
                "another worker took the job over.",
            )
        )
        if lost:
            # A dead worker counts as a transient failure: the retry horizon applies, and a job
            # that keeps killing its worker is stopped below instead of looping for ever.
            job.first_failure_at = job.first_failure_at or now
            job.failure_streak += 1
            BackgroundJob.objects.filter(pk=job.pk).update(
                first_failure_at=job.first_failure_at, failure_streak=job.failure_streak
            )
        _attempts_open(jobs=[job], token=token, now=now)
    if lost and _lost_in_a_row(job) >= MAX_LOST_ATTEMPTS_IN_A_ROW:
        _job_record_outcome(
            job=job,
            outcome=PermanentJobError(
                f"The worker running this job stopped {MAX_LOST_ATTEMPTS_IN_A_ROW} times in a "
                "row (crash or out of memory). A developer needs to look at it; press Retry now "
                "once it is fixed."
            ),
        )
        return None
    return job


def _lost_in_a_row(job: BackgroundJob) -> int:
    outcomes = list(
        JobAttempt.objects.filter(job=job, number__lt=job.attempts)
        .order_by("-number")
        .values_list("outcome", flat=True)[:MAX_LOST_ATTEMPTS_IN_A_ROW]
    )
    count = 0
    for outcome in outcomes:
        if outcome != JobAttemptOutcome.LOST:
            break
        count += 1
    return count


def _claim_due(
    *, kind: str, entity_id: int | None, token: str, limit: int, exclude_pk: int | None = None
) -> list[BackgroundJob]:
    """Claim up to `limit` due jobs of one kind and entity under `token`, in one UPDATE whose
    subquery skips rows other workers are claiming (SKIP LOCKED on PostgreSQL; SQLite serialises
    writers anyway). Jobs blocked behind an earlier one for the same target are left alone."""
    if limit < 1:
        return []
    now = clock.now()
    others = ~Q(pk=exclude_pk) if exclude_pk is not None else Q()
    candidates = (
        BackgroundJob.objects.filter(
            others,
            Q(entity_id=entity_id) if entity_id is not None else Q(entity__isnull=True),
            kind=kind,
            state__in=UNSTARTED_STATES,
            not_before__lte=now,
        )
        .exclude(_earlier_unfinished())
        .order_by("not_before", "id")
        .select_for_update(skip_locked=True)
        .values("id")[:limit]
    )
    with transaction.atomic():
        claimed = BackgroundJob.objects.filter(
            pk__in=Subquery(candidates), state__in=UNSTARTED_STATES
        ).update(**_claim_fields(token=token, now=now))
        if not claimed:
            return []
        jobs = list(
            BackgroundJob.objects.filter(
                others, lease_token=token, state=JobState.RUNNING
            ).order_by("id")
        )
        _attempts_open(jobs=jobs, token=token, now=now)
    return jobs


def _job_claim_batch(*, lead: BackgroundJob, limit: int) -> list[BackgroundJob]:
    """Claim up to `limit` more due jobs of the lead's kind and entity under the lead's lease."""
    return _claim_due(
        kind=lead.kind,
        entity_id=lead.entity_id,
        token=lead.lease_token,
        limit=limit,
        exclude_pk=lead.pk,
    )


def _job_claim_instead(*, job_id: int) -> BackgroundJob | None:
    """For a batch kind, a wake-up whose job was already taken claims the next due job of the
    same kind and entity: batch kinds are woken once per batch (_publish_wake_ups)."""
    row = BackgroundJob.objects.filter(pk=job_id).values_list("kind", "entity_id").first()
    if row is None:
        return None
    kind, entity_id = row
    handler = _handler_get(kind=kind)
    if handler is None or handler.batch_size < 2:
        return None
    claimed = _claim_due(kind=kind, entity_id=entity_id, token=uuid.uuid4().hex, limit=1)
    return claimed[0] if claimed else None


# --- Running ----------------------------------------------------------------------------------


def _handler_call(handler: JobHandler, jobs: list[BackgroundJob]) -> dict[int, Outcome]:
    try:
        if handler.batch_size > 1:
            returned = cast(BatchHandler, handler.func)(jobs)
            missing = PermanentJobError(
                "The sync code reported no outcome for this record. Tell your developer; press "
                "Retry now once it is fixed."
            )
            return {job.pk: returned.get(job.pk, missing) for job in jobs}
        success = cast(SingleHandler, handler.func)(jobs[0])
        return {jobs[0].pk: success if success is not None else JobSuccess()}
    except JobError as exc:
        return {job.pk: exc for job in jobs}
    except SoftTimeLimitExceeded:
        return {
            job.pk: TransientJobError(
                f"The job took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} seconds and "
                "was stopped; it will be tried again."
            )
            for job in jobs
        }
    except (OperationalError, InterfaceError) as exc:
        logger.warning("job %s: database unavailable: %r", jobs[0].pk, exc)
        return {
            job.pk: TransientJobError(
                "The database was unavailable; the job will be tried again.",
                detail={"exception": repr(exc)},
            )
            for job in jobs
        }
    except Exception as exc:
        # A bug, not a Xero problem: record it on the job for an admin instead of losing it in a
        # worker log, and do not retry it by itself (it would only fail the same way).
        logger.exception("job %s: handler %s crashed", jobs[0].pk, handler.kind)
        return {
            job.pk: PermanentJobError(
                f"BMS hit an unexpected error ({type(exc).__name__}). A developer needs to look "
                "at the detail below; press Retry now once it is fixed.",
                detail={"exception": repr(exc), "traceback": traceback.format_exc()},
            )
            for job in jobs
        }


def job_run(*, job_id: int) -> None:
    """Claim the job (and, for batch kinds, more of its kind and entity), run the handler, and
    record each job's outcome. Does nothing if the job cannot be claimed."""
    job = job_claim(job_id=job_id) or _job_claim_instead(job_id=job_id)
    if job is None:
        logger.info("job %s: nothing to claim (duplicate, early, blocked or finished)", job_id)
        return
    handler = _handler_get(kind=job.kind)
    if handler is None:
        _job_record_outcome(
            job=job,
            outcome=PermanentJobError(
                f"No handler is registered for {job.get_kind_display()} jobs in this BMS version. "
                "Tell your developer."
            ),
        )
        return
    jobs = [job]
    if handler.batch_size > 1:
        jobs += _job_claim_batch(lead=job, limit=handler.batch_size - 1)
    logger.info("job %s: running %s (batch of %d)", job.pk, job.kind, len(jobs))
    outcomes = _handler_call(handler, jobs)
    held: list[tuple[list[int], float | None]] = []
    token = _held_wake_ups.set(held)
    try:
        try:
            _jobs_record_outcomes(jobs=jobs, outcomes=outcomes)
        except DatabaseError:
            # One job's bad row must not keep the rest of the batch: record them one by one.
            logger.exception("job %s: could not record the batch's outcomes together", job.pk)
            failed_to_record = _jobs_record_each(jobs=jobs, outcomes=outcomes)
            if failed_to_record:
                raise DatabaseError(
                    f"Could not record the outcome of jobs {failed_to_record}."
                ) from None
    finally:
        _held_wake_ups.reset(token)
        now_due = [job_id for ids, countdown in held if not countdown for job_id in ids]
        _publish_on_commit(now_due)
        for ids, countdown in held:
            if countdown:
                _publish_on_commit(ids, countdown=countdown)


def _jobs_record_each(*, jobs: list[BackgroundJob], outcomes: dict[int, Outcome]) -> list[int]:
    """Record each job on its own; returns the ids that could not be recorded. Those keep their
    lease, which expires, and the sweeper hands them to another worker (handlers are idempotent
    by contract)."""
    failed: list[int] = []
    for each in jobs:
        try:
            _job_record_outcome(job=each, outcome=outcomes[each.pk])
        except DatabaseError:
            logger.exception("job %s: could not record its outcome", each.pk)
            failed.append(each.pk)
    return failed


# --- Recording outcomes -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What one outcome writes: the job's fields and its attempt's."""

    fields: dict[str, Any]
    attempt_outcome: str
    message: str = ""
    detail: Any = None
    # Longest countdown a wake-up may carry (longer waits are left to the sweeper).
    longest_wake: float = SHORT_WAIT_SECONDS


def _outcome_plan(*, job: BackgroundJob, outcome: Outcome, now: datetime) -> _Plan:
    cleared: dict[str, Any] = {
        "lease_until": None,
        "updated_at": now,
        "wait_kind": JobWaitKind.NONE,
        "wait_reason": "",
    }
    if isinstance(outcome, JobSuccess):
        return _Plan(
            fields={
                **cleared,
                "state": JobState.SUCCEEDED,
                "result": outcome.result,
                "external_url": outcome.external_url,
                "error_message": "",
                "error_detail": None,
                "first_failure_at": None,
                "failure_streak": 0,
                "finished_at": now,
            },
            attempt_outcome=JobAttemptOutcome.SUCCEEDED,
        )
    if isinstance(outcome, JobSkipped):
        return _Plan(
            fields={
                **cleared,
                "state": JobState.SKIPPED,
                "result": {"skipped_reason": outcome.message},
                "error_message": "",
                "error_detail": None,
                "finished_at": now,
            },
            attempt_outcome=JobAttemptOutcome.SKIPPED,
            message=outcome.message,
        )
    if isinstance(outcome, JobWait):
        # A wait is not a failure: it ends the current run of failures, so time spent waiting
        # (a rate-limit window, a paused connection) never uses up the retry horizon.
        until = outcome.until
        if until is not None:
            # A window that has already passed still waits a moment: never a tight loop.
            until = max(until, now + timedelta(seconds=MIN_WAIT_SECONDS))
        return _Plan(
            fields={
                **cleared,
                "state": JobState.WAITING,
                "not_before": until,
                "wait_kind": JobWaitKind.UNTIL if outcome.until else JobWaitKind.RESUME,
                "wait_reason": outcome.message[:300],
                "first_failure_at": None,
                "failure_streak": 0,
                "published_at": None,
            },
            attempt_outcome=JobAttemptOutcome.WAIT,
            message=outcome.message,
            longest_wake=TIMED_WAIT_COUNTDOWN_SECONDS,
        )
    if isinstance(outcome, TransientJobError):
        first_failure_at = job.first_failure_at or now
        streak = job.failure_streak + 1
        if now - first_failure_at >= _retry_horizon():
            hours = settings.BMS_JOB_RETRY_HORIZON_HOURS
            fields = {
                **cleared,
                "state": JobState.FAILED,
                "error_message": f"Gave up after retrying for {hours} hours: {outcome.message} "
                "Press Retry now once the cause is fixed.",
                "error_detail": outcome.detail,
                "first_failure_at": first_failure_at,
                "failure_streak": streak,
                "finished_at": now,
            }
        else:
            delay = job_retry_delay_seconds(failure_streak=streak, retry_after=outcome.retry_after)
            fields = {
                **cleared,
                "state": JobState.QUEUED,
                "not_before": now + timedelta(seconds=delay),
                "error_message": outcome.message,
                "error_detail": outcome.detail,
                "first_failure_at": first_failure_at,
                "failure_streak": streak,
                "published_at": None,
            }
        return _Plan(
            fields=fields,
            attempt_outcome=JobAttemptOutcome.TRANSIENT,
            message=outcome.message,
            detail=outcome.detail,
        )
    if isinstance(outcome, PermanentJobError):
        return _Plan(
            fields={
                **cleared,
                "state": JobState.FAILED,
                "error_message": outcome.message,
                "error_detail": outcome.detail,
                "finished_at": now,
            },
            attempt_outcome=JobAttemptOutcome.PERMANENT,
            message=outcome.message,
            detail=outcome.detail,
        )
    raise TypeError(f"Not a job outcome: {outcome!r}")


def _job_record_outcome(*, job: BackgroundJob, outcome: Outcome) -> bool:
    """Write one job's outcome if this worker still holds its lease. Returns False (and writes
    nothing) when the lease was taken over meanwhile."""
    return job.pk in _jobs_record_outcomes(jobs=[job], outcomes={job.pk: outcome})


def _jobs_record_outcomes(*, jobs: list[BackgroundJob], outcomes: dict[int, Outcome]) -> set[int]:
    """Write a batch's outcomes in a handful of statements, whatever its size: each job only if
    this worker still holds its lease. Returns the ids written; the others were taken over.

    Per-job statements were a third of a worker's time with a backlog of invoice pushes
    (bench/invoices_bench.py); the rows are locked and written together instead.
    """
    now = clock.now()
    plans = {job.pk: _outcome_plan(job=job, outcome=outcomes[job.pk], now=now) for job in jobs}
    tokens = {job.pk: job.lease_token for job in jobs}
    with transaction.atomic():
        rows: list[BackgroundJob] = list(
            BackgroundJob.objects.select_for_update()
            .filter(pk__in=list(plans), state=JobState.RUNNING)
            .annotate(has_parts=Exists(BackgroundJob.objects.filter(parent_id=OuterRef("pk"))))
            .order_by("pk")
        )
        held = [row for row in rows if row.lease_token == tokens[row.pk]]
        for pk in sorted(set(plans) - {row.pk for row in held}):
            logger.warning(
                "job %s: lease %s was taken over; not recording %s",
                pk,
                tokens[pk],
                plans[pk].attempt_outcome,
            )
        if not held:
            return set()
        changed: set[str] = set()
        finished: list[BackgroundJob] = []
        with_parts: list[BackgroundJob] = []
        wakes: dict[float | None, list[BackgroundJob]] = defaultdict(list)
        for row in held:
            plan = plans[row.pk]
            fields = dict(plan.fields)
            if fields["state"] == JobState.SUCCEEDED and getattr(row, "has_parts", False):
                # A bulk job's handler has added its parts: it finishes when they do.
                fields.update(
                    state=JobState.WAITING,
                    not_before=None,
                    finished_at=None,
                    wait_kind=JobWaitKind.CHILDREN,
                    wait_reason="Waiting for its parts to finish",
                )
                with_parts.append(row)
            elif fields["state"] in (JobState.QUEUED, JobState.WAITING):
                countdown = _wake_countdown(
                    not_before=fields["not_before"], now=now, longest=plan.longest_wake
                )
                if countdown is not None:
                    fields["published_at"] = now
                    wakes[countdown or None].append(row)
            else:
                finished.append(row)
            for name, value in fields.items():
                setattr(row, name, value)
            changed.update(fields)
        _rows_write(held, sorted(changed))
        _attempts_close(held=held, plans=plans, tokens=tokens, now=now)
        for row in with_parts:
            _parent_maybe_finish(parent=row, now=now)
        if finished:
            _after_finish_many(jobs=finished, now=now)
        for countdown, woken in wakes.items():
            _publish_wake_ups(woken, countdown=countdown)
    return {row.pk for row in held}


def _rows_write(rows: list[BackgroundJob], names: list[str]) -> None:
    """Write the named fields of locked rows in one UPDATE. A value every row shares is a plain
    assignment; only values that differ (a success's result and link) become a CASE on the id.
    A row's fields its outcome did not change carry the values just read under its lock, so
    nothing another writer set is overwritten. (bulk_update() wrote every field as a CASE and
    doubled the cost of recording a single job.)"""
    assignments: dict[str, Any] = {}
    for name in names:
        values = [getattr(row, name) for row in rows]
        if all(value == values[0] for value in values[1:]):
            assignments[name] = values[0]
            continue
        field = cast(Field, BackgroundJob._meta.get_field(name))
        assignments[name] = Case(
            *(
                When(
                    pk=row.pk, then=Value(value, output_field=field) if value is not None else None
                )
                for row, value in zip(rows, values, strict=True)
            ),
            output_field=field,
        )
    BackgroundJob.objects.filter(pk__in=[row.pk for row in rows]).update(**assignments)


def _attempts_close(
    *,
    held: list[BackgroundJob],
    plans: dict[int, _Plan],
    tokens: dict[int, str],
    now: datetime,
) -> None:
    """Close the held jobs' running attempts: one UPDATE per distinct outcome and message."""
    groups: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for row in held:
        plan = plans[row.pk]
        # Details are per job (Xero's messages for its record); identical outcomes share one.
        groups[(plan.attempt_outcome, plan.message, row.pk if plan.detail else 0)].append(row.pk)
    for (outcome, message, _), ids in groups.items():
        JobAttempt.objects.filter(
            job_id__in=ids,
            lease_token__in={tokens[pk] for pk in ids},
            outcome=JobAttemptOutcome.RUNNING,
        ).update(
            outcome=outcome, ended_at=now, error_message=message, error_detail=plans[ids[0]].detail
        )


def _after_finish(*, job: BackgroundJob, now: datetime) -> None:
    _after_finish_many(jobs=[job], now=now)


def _after_finish_many(*, jobs: list[BackgroundJob], now: datetime) -> None:
    """What jobs reaching a final state set in motion, in the same transaction: their dependents,
    the next job for the same target, earlier failures they supersede, and their parents."""
    ok_states = (JobState.SUCCEEDED, JobState.SKIPPED)
    done_ok = [job for job in jobs if job.state in ok_states]
    done_bad = {job.pk: job for job in jobs if job.state not in ok_states}
    if done_ok:
        woken = list(
            BackgroundJob.objects.filter(
                depends_on_id__in=[job.pk for job in done_ok],
                state=JobState.WAITING,
                wait_kind=JobWaitKind.DEPENDENCY,
            ).only("id", "kind", "entity_id")
        )
        if woken:
            BackgroundJob.objects.filter(
                pk__in=[job.pk for job in woken], state=JobState.WAITING
            ).update(
                state=JobState.QUEUED,
                not_before=now,
                wait_kind=JobWaitKind.NONE,
                wait_reason="",
                published_at=now,
                updated_at=now,
            )
            _publish_wake_ups(woken)
    if done_bad:
        dependents = list(
            BackgroundJob.objects.filter(
                depends_on_id__in=list(done_bad),
                state=JobState.WAITING,
                wait_kind=JobWaitKind.DEPENDENCY,
            ).order_by("id")
        )
        for dependent in dependents:
            message = _dependency_failed_message(done_bad[dependent.depends_on_id or 0])
            failed = BackgroundJob.objects.filter(pk=dependent.pk, state=JobState.WAITING).update(
                state=JobState.FAILED,
                error_message=message,
                wait_kind=JobWaitKind.NONE,
                wait_reason="",
                finished_at=now,
                updated_at=now,
            )
            if failed:
                dependent.state = JobState.FAILED
                dependent.error_message = message
                _after_finish(job=dependent, now=now)

    keyed = {job.dedupe_key: job for job in jobs if job.dedupe_key}
    succeeded = [job for job in keyed.values() if job.state == JobState.SUCCEEDED]
    if succeeded:
        # The records are in Xero now; their older failures are no longer errors to fix.
        BackgroundJob.objects.filter(
            reduce(or_, (Q(dedupe_key=job.dedupe_key, id__lt=job.pk) for job in succeeded)),
            state=JobState.FAILED,
            resolved_at__isnull=True,
        ).update(
            resolved_at=now,
            resolved_reason=Case(
                *(
                    When(
                        dedupe_key=job.dedupe_key,
                        then=Value(f"Superseded: job #{job.pk} for the same record succeeded."),
                    )
                    for job in succeeded
                ),
                default=Value("Superseded by a later job for the same record."),
            ),
            updated_at=now,
        )
    if keyed:
        follow_ups: dict[str, int] = {}
        for key, job_id in (
            BackgroundJob.objects.filter(
                dedupe_key__in=list(keyed), state__in=UNSTARTED_STATES, not_before__lte=now
            )
            .order_by("-id")
            .values_list("dedupe_key", "id")
        ):
            follow_ups[key] = job_id  # ordered newest first: the earliest one wins
        if follow_ups:
            _publish_on_commit(sorted(follow_ups.values()))

    sizes: dict[int, int] = defaultdict(int)
    for job in jobs:
        if job.parent_id is not None:
            sizes[job.parent_id] += job.progress_total
    for parent_id in sorted(sizes):
        parent = BackgroundJob.objects.select_for_update().get(pk=parent_id)
        BackgroundJob.objects.filter(pk=parent.pk).update(
            progress_done=F("progress_done") + sizes[parent_id], updated_at=now
        )
        if parent.state == JobState.WAITING and parent.wait_kind == JobWaitKind.CHILDREN:
            _parent_maybe_finish(parent=parent, now=now)


def _parent_maybe_finish(*, parent: BackgroundJob, now: datetime) -> None:
    """Finish a bulk job whose parts have all finished. Callers hold the parent's row lock, so two
    parts finishing at once cannot both miss being the last one."""
    children = BackgroundJob.objects.filter(parent_id=parent.pk)
    if children.filter(state__in=UNFINISHED_STATES).exists():
        return
    failed = children.filter(state=JobState.FAILED).count()
    total = children.count()
    fields: dict[str, Any] = {
        "wait_kind": JobWaitKind.NONE,
        "wait_reason": "",
        "finished_at": now,
        "updated_at": now,
    }
    if failed:
        fields.update(
            state=JobState.FAILED,
            error_message=f"{failed} of {total} parts failed. Open each failed part below to see "
            "why, fix the cause, then press Retry now to run just the failed parts again.",
        )
    else:
        fields.update(state=JobState.SUCCEEDED, error_message="", error_detail=None)
    finished = BackgroundJob.objects.filter(
        pk=parent.pk, state=JobState.WAITING, wait_kind=JobWaitKind.CHILDREN
    ).update(**fields)
    if finished:
        parent.state = fields["state"]
        parent.error_message = fields.get("error_message", "")
        _after_finish(job=parent, now=now)


# --- Sweeper and resume -----------------------------------------------------------------------


def job_sweep(*, limit: int = SWEEP_BATCH) -> int:
    """Re-publish due jobs nobody has been told about (a lost message, a retry or wait that has
    come due) and running jobs whose lease expired (a killed worker). Bounded per call; rows other
    sweepers hold are skipped. Returns how many jobs were published."""
    now = clock.now()
    not_recently_published = Q(published_at__isnull=True) | Q(
        published_at__lt=now - REPUBLISH_AFTER
    )
    with transaction.atomic():
        due = list(
            BackgroundJob.objects.filter(state__in=UNSTARTED_STATES, not_before__lte=now)
            .filter(not_recently_published)
            .exclude(_earlier_unfinished())
            .order_by("not_before", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        abandoned = list(
            BackgroundJob.objects.filter(state=JobState.RUNNING, lease_until__lt=now)
            .filter(not_recently_published)
            .order_by("lease_until", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        job_ids = due + abandoned
        if job_ids:
            BackgroundJob.objects.filter(pk__in=job_ids).update(published_at=now)
            _publish_on_commit(job_ids)
    if job_ids:
        logger.info("sweeper published %d due and %d abandoned jobs", len(due), len(abandoned))
    return len(job_ids)


def jobs_resume(*, entity_ids: list[int] | None = None, reason_contains: str | None = None) -> int:
    """Make jobs waiting on time or on a paused connection due now (e.g. after the Xero connection
    has been re-authorised). Jobs waiting for a dependency or for their parts are left alone.
    Returns how many jobs were resumed."""
    now = clock.now()
    with transaction.atomic():
        waiting = BackgroundJob.objects.filter(
            state=JobState.WAITING, wait_kind__in=[JobWaitKind.UNTIL, JobWaitKind.RESUME]
        )
        if entity_ids is not None:
            waiting = waiting.filter(entity_id__in=entity_ids)
        if reason_contains:
            waiting = waiting.filter(wait_reason__icontains=reason_contains)
        job_ids = list(waiting.select_for_update(skip_locked=True).values_list("id", flat=True))
        resumed = BackgroundJob.objects.filter(pk__in=job_ids, state=JobState.WAITING).update(
            state=JobState.QUEUED,
            not_before=now,
            wait_kind=JobWaitKind.NONE,
            wait_reason="",
            published_at=now,
            updated_at=now,
        )
        _publish_on_commit(job_ids)
    return resumed


# --- Admin actions ----------------------------------------------------------------------------


def _job_requeue(*, job: BackgroundJob, now: datetime) -> BackgroundJob:
    """Put a failed or cancelled job back in the queue (as the same row, so its attempts stay
    together). If another unstarted job for the same work exists, that one will do; this one is
    marked resolved as superseded. Returns the job that will run."""
    depends_on = job.depends_on
    if depends_on is not None and depends_on.state in (JobState.FAILED, JobState.CANCELLED):
        # Retrying an invoice whose contact push failed retries the contact push first.
        depends_on = _job_requeue(job=depends_on, now=now)
    if job.dedupe_key and job.parent_id is None:
        waiting_to_start = _unstarted_for_key(job.dedupe_key)
        if waiting_to_start is not None and waiting_to_start.pk != job.pk:
            return _job_superseded(job=job, by=waiting_to_start, now=now)
    start = _start_for(depends_on=depends_on, not_before=now)
    try:
        with transaction.atomic():
            requeued = BackgroundJob.objects.filter(
                pk=job.pk, state__in=[JobState.FAILED, JobState.CANCELLED]
            ).update(
                state=start.state,
                not_before=start.not_before,
                wait_kind=start.wait_kind,
                wait_reason=start.wait_reason,
                depends_on=depends_on,
                error_message=start.error_message,
                error_detail=None,
                first_failure_at=None,
                failure_streak=0,
                finished_at=None,
                resolved_at=None,
                resolved_by=None,
                resolved_reason="",
                published_at=now if start.state == JobState.QUEUED else None,
                updated_at=now,
            )
    except IntegrityError:
        # A never-started job for the same work was queued in the meantime.
        existing = _unstarted_for_key(job.dedupe_key)
        if existing is None:
            raise
        return _job_superseded(job=job, by=existing, now=now)
    if not requeued:
        job.refresh_from_db()
        return job
    if start.state == JobState.QUEUED:
        _publish_on_commit([job.pk])
    if job.parent_id is not None and job.state != start.state:
        _parent_reopen(parent_id=job.parent_id, size=job.progress_total, now=now)
    # Dependents that failed because this job failed wait for it again.
    for dependent in BackgroundJob.objects.filter(
        depends_on_id=job.pk, state=JobState.FAILED, resolved_at__isnull=True
    ):
        _job_requeue(job=dependent, now=now)
    job.refresh_from_db()
    return job


def _job_superseded(*, job: BackgroundJob, by: BackgroundJob, now: datetime) -> BackgroundJob:
    """A newer job for the same record is already queued: it will do this job's work (handlers
    push the record's current state), so this one is closed as resolved instead of run twice."""
    BackgroundJob.objects.filter(pk=job.pk, resolved_at__isnull=True).update(
        resolved_at=now,
        resolved_reason=f"Superseded by job #{by.pk}, already queued for this record.",
        updated_at=now,
    )
    # What failed because this job failed now waits for the job that will do its work.
    for dependent in BackgroundJob.objects.filter(
        depends_on_id=job.pk, state=JobState.FAILED, resolved_at__isnull=True
    ):
        BackgroundJob.objects.filter(pk=dependent.pk).update(depends_on=by)
        dependent.depends_on = by
        _job_requeue(job=dependent, now=now)
    return by


def _parent_reopen(*, parent_id: int, size: int, now: datetime) -> None:
    """A part runs again: take it off the parent's progress and make the parent wait for it."""
    parent = BackgroundJob.objects.select_for_update().get(pk=parent_id)
    fields: dict[str, Any] = {"progress_done": F("progress_done") - size, "updated_at": now}
    if parent.is_finished:
        fields.update(
            state=JobState.WAITING,
            not_before=None,
            wait_kind=JobWaitKind.CHILDREN,
            wait_reason="Waiting for its parts to finish",
            finished_at=None,
            resolved_at=None,
            resolved_by=None,
            resolved_reason="",
            error_message="",
        )
    try:
        with transaction.atomic():
            BackgroundJob.objects.filter(pk=parent_id).update(**fields)
    except IntegrityError:
        # Another bulk job for the same work is already queued; keep this parent as it was apart
        # from its progress.
        BackgroundJob.objects.filter(pk=parent_id).update(
            progress_done=F("progress_done") - size, updated_at=now
        )


def job_retry(*, job: BackgroundJob, user: AbstractBaseUser | None) -> BackgroundJob:
    """Retry now: a failed or cancelled job runs again; a queued or waiting job (back-off, rate
    limit, paused connection) is made due now. For a failed bulk job only its failed parts run
    again. Returns the job that will run. Raises ValidationError for any other state."""
    now = clock.now()
    with transaction.atomic():
        job = BackgroundJob.objects.select_for_update().get(pk=job.pk)
        if job.state in UNSTARTED_STATES:
            if job.wait_kind in (JobWaitKind.DEPENDENCY, JobWaitKind.CHILDREN):
                raise ValidationError(f"This job is waiting for something else: {job.wait_reason}.")
            BackgroundJob.objects.filter(pk=job.pk).update(
                state=JobState.QUEUED,
                not_before=now,
                wait_kind=JobWaitKind.NONE,
                wait_reason="",
                published_at=now,
                updated_at=now,
            )
            _publish_on_commit([job.pk])
            job.refresh_from_db()
            return job
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ValidationError(f"A {job.get_state_display().lower()} job cannot be retried.")
        failed_children = list(
            BackgroundJob.objects.filter(
                parent_id=job.pk, state__in=[JobState.FAILED, JobState.CANCELLED]
            ).order_by("id")
        )
        if failed_children:
            for child in failed_children:
                _job_requeue(job=child, now=now)
            job.refresh_from_db()
            return job
        logger.info("job %s: retried by %s", job.pk, user)
        return _job_requeue(job=job, now=now)


def job_retry_all_failed(
    *, user: AbstractBaseUser | None, filters: JobFilters | None = None
) -> int:
    """Retry every unresolved failed job matching the Unresolved errors filters. Returns how many
    were put back in the queue."""
    job_ids = list(job_list(tab=JobTab.UNRESOLVED, filters=filters).values_list("id", flat=True))
    retried = 0
    for job_id in job_ids:
        try:
            job_retry(job=BackgroundJob(pk=job_id), user=user)
        except ValidationError:
            continue  # changed state since the list was read
        retried += 1
    return retried


def job_cancel(*, job: BackgroundJob, user: AbstractBaseUser | None) -> BackgroundJob:
    """Cancel a job that has not started. Its dependents fail (saying it was cancelled); a bulk
    job's unstarted parts are cancelled with it. Raises ValidationError otherwise."""
    now = clock.now()
    with transaction.atomic():
        job = BackgroundJob.objects.select_for_update().get(pk=job.pk)
        if job.state not in UNSTARTED_STATES:
            raise ValidationError(
                f"Only queued or waiting jobs can be cancelled; this one is "
                f"{job.get_state_display().lower()}."
            )
        reason = f"Cancelled by {user}" if user is not None else "Cancelled"
        closed = {
            "state": JobState.CANCELLED,
            "wait_kind": JobWaitKind.NONE,
            "wait_reason": "",
            "finished_at": now,
            "updated_at": now,
            "resolved_at": now,
            "resolved_by_id": user.pk if user is not None else None,
            "resolved_reason": reason,
        }
        parts = BackgroundJob.objects.filter(parent_id=job.pk, state__in=UNSTARTED_STATES)
        parts_size = sum(parts.values_list("progress_total", flat=True))
        parts.update(**closed)
        BackgroundJob.objects.filter(pk=job.pk).update(
            **closed, progress_done=F("progress_done") + parts_size
        )
        job.refresh_from_db()
        _after_finish(job=job, now=now)
    return job


def job_resolve(*, job: BackgroundJob, user: AbstractBaseUser | None, reason: str) -> BackgroundJob:
    """Mark a failed job resolved (someone fixed it another way). The reason is required."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say how the problem was resolved.")
    now = clock.now()
    with transaction.atomic():
        fields = {
            "resolved_at": now,
            "resolved_by_id": user.pk if user is not None else None,
            "resolved_reason": reason[:500],
            "updated_at": now,
        }
        resolved = BackgroundJob.objects.filter(
            pk=job.pk, state=JobState.FAILED, resolved_at__isnull=True
        ).update(**fields)
        if not resolved:
            raise ValidationError("Only failed jobs that are not yet resolved can be resolved.")
        BackgroundJob.objects.filter(
            parent_id=job.pk, state=JobState.FAILED, resolved_at__isnull=True
        ).update(**fields)
    job.refresh_from_db()
    return job
