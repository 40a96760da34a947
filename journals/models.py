"""Nightly cost-of-sales journals: one row per Xero manual journal BMS posts (or decided not to).

A day's figures are debits to the cost-of-sales accounts and credits to the stock-on-hand accounts
of the stock invoiced that local day, less what was credited that day. The first journal of a day
(sequence 0, "the day's journal") is unique per (entity, date), following Zulip's invoice_plan
pattern; once it is in Xero it is never rewritten, so a later change to the day's figures (a void,
a correction, a credit note released after an on-demand post) is posted as an adjustment journal
with the next sequence number for the same date. At most one journal per (entity, date) is not
yet posted, and that one is rebuilt rather than duplicated.

The push records STARTED, with its idempotency key and attempt time, before calling Xero; a
STARTED journal's lines are frozen until Xero's answer is known (see services.py).
"""

from django.db import models
from django.db.models import Q


class JournalStatus(models.TextChoices):
    READY = "ready", "Ready to post"
    STARTED = "started", "Posting"  # saved before calling Xero: the outcome may not be known yet
    POSTED = "posted", "Posted"
    FAILED = "failed", "Failed"  # refused by the pre-push check or by Xero; fix, then push again
    NOTHING = "nothing", "Nothing to post"


# Not (yet) in Xero, so the day's one open journal: rebuilt, never duplicated.
UNPOSTED_STATUSES = (
    JournalStatus.READY,
    JournalStatus.STARTED,
    JournalStatus.FAILED,
    JournalStatus.NOTHING,
)
# May be rebuilt from the current figures: its lines have certainly not reached Xero.
REBUILDABLE_STATUSES = (JournalStatus.READY, JournalStatus.FAILED, JournalStatus.NOTHING)


class CostOfSalesJournal(models.Model):
    entity = models.ForeignKey(
        "billing.Entity", on_delete=models.PROTECT, related_name="cost_of_sales_journals"
    )
    journal_date = models.DateField()  # the entity's local business date
    # 0 is the day's journal; 1, 2 … are adjustments posted after it for the same date.
    sequence = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=JournalStatus.choices, default=JournalStatus.READY
    )
    currency = models.CharField(max_length=3)
    total_debit = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    # When the day's figures were last read from billing for this row (built or re-checked).
    checked_at = models.DateTimeField()
    # Push bookkeeping: attempt number and its Idempotency-Key, saved before each Xero call.
    attempt = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=128, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    last_push_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The last attempt got no reply at all (rather than an error reply, which Xero would replay
    # for the same key): only then is re-sending with the same key useful.
    last_reply_lost = models.BooleanField(default=False)
    xero_journal_id = models.CharField(max_length=36, blank=True)
    xero_status = models.CharField(max_length=20, blank=True)
    # True when the journal was found in Xero by its narration tag rather than from a reply.
    adopted = models.BooleanField(default=False)
    posted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-journal_date", "entity", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "journal_date", "sequence"],
                name="journal_one_per_entity_date_sequence",
            ),
            # Re-running a date never makes a second unposted journal: it rebuilds this one.
            models.UniqueConstraint(
                fields=["entity", "journal_date"],
                condition=Q(status__in=UNPOSTED_STATUSES),
                name="journal_one_unposted_per_entity_date",
            ),
            models.CheckConstraint(
                condition=~Q(status=JournalStatus.POSTED)
                | (~Q(xero_journal_id="") & Q(posted_at__isnull=False)),
                name="journal_posted_has_xero_id",
            ),
            models.CheckConstraint(
                condition=~Q(status=JournalStatus.STARTED)
                | (~Q(idempotency_key="") & Q(attempt_started_at__isnull=False)),
                name="journal_started_has_key",
            ),
            models.CheckConstraint(condition=Q(total_debit__gte=0), name="journal_debit_positive"),
        ]
        indexes = [
            models.Index(fields=["entity", "journal_date"], name="journal_entity_date"),
            models.Index(fields=["status"], name="journal_status"),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.journal_date} — {self.entity}"

    @property
    def is_adjustment(self) -> bool:
        return self.sequence > 0

    @property
    def label(self) -> str:
        return f"Cost of sales adjustment {self.sequence}" if self.sequence else "Cost of sales"

    @property
    def tag(self) -> str:
        """The journal's identity in Xero: manual journals have no business key there, so the
        narration carries it and an uncertain push can always find it again."""
        return f"[bms-journal:{self.pk}]"

    @property
    def narration(self) -> str:
        return f"{self.label} {self.journal_date.isoformat()} — {self.entity.name} {self.tag}"


class CostOfSalesJournalLine(models.Model):
    """One account's net amount on a journal, in Xero's sign convention (debit +, credit −)."""

    journal = models.ForeignKey(CostOfSalesJournal, on_delete=models.CASCADE, related_name="lines")
    account = models.ForeignKey("billing.Account", on_delete=models.PROTECT, related_name="+")
    account_code = models.CharField(max_length=10)
    description = models.CharField(max_length=255)
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["journal", "-amount", "account_code"]
        constraints = [
            models.UniqueConstraint(fields=["journal", "account"], name="journal_line_per_account"),
            models.CheckConstraint(condition=~Q(amount=0), name="journal_line_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.account_code} {self.amount}"

    @property
    def debit(self) -> object:
        return self.amount if self.amount > 0 else None

    @property
    def credit(self) -> object:
        return -self.amount if self.amount < 0 else None
