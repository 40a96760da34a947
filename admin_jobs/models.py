"""The background job table: the durable outbox that decides what runs, and the audit log.

A Celery message is only a wake-up call naming a job id. Whether anything runs is decided here, by
a conditional UPDATE that takes a lease (see services.job_claim). Every constraint the engine relies
on is a database constraint or index, so it holds across processes and under concurrency.
"""

import json
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q


class JobKind(models.TextChoices):
    PUSH_CONTACT = "push_contact", "Contact push"
    PUSH_INVOICE = "push_invoice", "Invoice push"
    PUSH_CREDIT_NOTE = "push_credit_note", "Credit note push"
    PUSH_PAYMENT = "push_payment", "Payment push"
    PULL_PAYMENTS = "pull_payments", "Payments pull"
    COST_OF_SALES_JOURNAL = "cost_of_sales_journal", "Cost-of-sales journal"
    BULK_CUSTOMER_SYNC = "bulk_customer_sync", "Bulk customer sync"
    IMPORT_CONTACTS = "import_contacts", "Contacts import"
    PULL_ACCOUNTS = "pull_accounts", "Accounts pull"
    RECONCILE = "reconcile", "Reconcile"
    REFRESH_TOKENS = "refresh_tokens", "Token refresh"
    NOOP = "noop", "No-op (diagnostic)"


class JobDirection(models.TextChoices):
    EXPORT = "export", "Export"
    IMPORT = "import", "Import"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    WAITING = "waiting", "Waiting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


# A job that has not started yet; a second request for the same work collapses into it.
UNSTARTED_STATES = (JobState.QUEUED, JobState.WAITING)
# A job that may still run; a later job for the same dedupe key must wait for it.
UNFINISHED_STATES = (JobState.QUEUED, JobState.WAITING, JobState.RUNNING)
FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED)


class JobWaitKind(models.TextChoices):
    """Why a waiting job waits; decides what wakes it up."""

    NONE = "", "—"
    UNTIL = "until", "Until a time"  # rate-limit window: the sweeper wakes it at not_before
    RESUME = "resume", "Until resumed"  # paused connection: jobs_resume() wakes it
    DEPENDENCY = "dependency", "Dependency"  # the depends_on job finishing wakes it
    CHILDREN = "children", "Its parts"  # the last child finishing finishes it


class JobTrigger(models.TextChoices):
    USER = "user", "User"
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    DEPENDENCY = "dependency", "Dependency"
    SYSTEM = "system", "System"


class BackgroundJob(models.Model):
    kind = models.CharField(max_length=40, choices=JobKind.choices)
    direction = models.CharField(max_length=10, choices=JobDirection.choices)
    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.QUEUED)
    entity = models.ForeignKey(
        "billing.Entity", null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    target_content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # job_target starts with it
    )
    target_object_id = models.PositiveBigIntegerField(null=True, blank=True)
    target = GenericForeignKey("target_content_type", "target_object_id")
    # Stored at enqueue time so the banner and lists never load the target row itself.
    target_url = models.CharField(max_length=500, blank=True)
    description = models.CharField(max_length=300)
    # "<kind>:<content type>:<object id>" or "<kind>:entity:<id>" (or the caller's own key). Empty
    # means "never collapse and never order" (bulk parts without a single target).
    dedupe_key = models.CharField(max_length=200, blank=True)

    # NULL while waiting for something other than time (a dependency, a resume, its parts).
    not_before = models.DateTimeField(null=True, blank=True)
    wait_kind = models.CharField(
        max_length=12, choices=JobWaitKind.choices, blank=True, default=JobWaitKind.NONE
    )
    wait_reason = models.CharField(max_length=300, blank=True)
    # When the wake-up message was last sent; NULL means "nobody has been told, sweeper's job".
    published_at = models.DateTimeField(null=True, blank=True)

    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The current run of transient failures: when it began and how long it is (for back-off).
    first_failure_at = models.DateTimeField(null=True, blank=True)
    failure_streak = models.PositiveIntegerField(default=0)

    triggered_by = models.CharField(max_length=12, choices=JobTrigger.choices)
    triggered_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # never filtered on; fewer indexes keep the hot UPDATEs cheap to plan
    )

    error_message = models.TextField(blank=True)  # for people, says what to do next
    error_detail = models.JSONField(null=True, blank=True)  # for admins: raw validation messages
    external_url = models.URLField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)

    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        db_index=False,  # job_parent_state starts with it
    )
    depends_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="dependents"
    )

    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    resolved_reason = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Two Sync presses make one job: one never-started top-level job per dedupe key. A job
            # that has started (running, or queued again for a retry) is outside the condition,
            # so a change made meanwhile queues one follow-up, which runs after it (job_claim).
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(state__in=UNSTARTED_STATES, attempts=0, parent__isnull=True)
                & ~Q(dedupe_key=""),
                name="job_one_unstarted_per_key",
            ),
            models.CheckConstraint(
                condition=~Q(state=JobState.RUNNING)
                | (Q(lease_until__isnull=False) & ~Q(lease_token="")),
                name="job_running_has_lease",
            ),
            models.CheckConstraint(
                condition=~Q(state=JobState.QUEUED) | Q(not_before__isnull=False),
                name="job_queued_has_not_before",
            ),
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")),
                name="job_progress_within_total",
            ),
        ]
        indexes = [
            # The per-key ordering check ("an earlier unfinished job exists").
            models.Index(
                fields=["dedupe_key", "id"],
                condition=Q(state__in=UNFINISHED_STATES),
                name="job_unfinished_key",
            ),
            # The sweeper: due unstarted jobs, and running jobs whose lease expired.
            models.Index(
                fields=["not_before"], condition=Q(state__in=UNSTARTED_STATES), name="job_due"
            ),
            models.Index(
                fields=["lease_until"], condition=Q(state=JobState.RUNNING), name="job_lease"
            ),
            # Batch claiming: due jobs of one kind and entity.
            models.Index(
                fields=["kind", "entity", "not_before"],
                condition=Q(state__in=UNSTARTED_STATES),
                name="job_batch_due",
            ),
            models.Index(
                fields=["lease_token"], condition=Q(state=JobState.RUNNING), name="job_holder"
            ),
            # The banner's COUNT and the Unresolved errors tab.
            models.Index(
                fields=["id"],
                condition=Q(state=JobState.FAILED, resolved_at__isnull=True, parent__isnull=True),
                name="job_unresolved",
            ),
            # "Has this bulk job any unfinished parts?", asked each time one of its parts finishes.
            models.Index(fields=["parent", "state"], name="job_parent_state"),
            models.Index(fields=["state", "created_at"], name="job_state_created"),
            models.Index(
                fields=["target_content_type", "target_object_id", "id"], name="job_target"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} — {self.description}"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 0
        return int(100 * self.progress_done / self.progress_total)

    @property
    def error_detail_text(self) -> str:
        return _pretty_json(self.error_detail)

    @property
    def result_text(self) -> str:
        return _pretty_json(self.result)

    @property
    def skipped_reason(self) -> str:
        result: Any = self.result
        if isinstance(result, dict):
            return str(result.get("skipped_reason", ""))
        return ""


def _pretty_json(value: Any) -> str:
    if value in (None, "", {}, []):
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


class JobAttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    TRANSIENT = "transient", "Temporary failure"
    PERMANENT = "permanent", "Failed"
    WAIT = "wait", "Waiting"
    SKIPPED = "skipped", "Skipped"
    LOST = "lost", "Worker lost"


class JobAttempt(models.Model):
    job = models.ForeignKey(BackgroundJob, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    lease_token = models.CharField(max_length=32)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=12, choices=JobAttemptOutcome.choices, default=JobAttemptOutcome.RUNNING
    )
    error_message = models.TextField(blank=True)
    error_detail = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="job_attempt_number"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of job #{self.job_id}"

    @property
    def error_detail_text(self) -> str:
        return _pretty_json(self.error_detail)
