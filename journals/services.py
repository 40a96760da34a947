"""Building and posting the nightly cost-of-sales journals.

How a journal reaches Xero exactly once (reliability-notes.md §1.3, §6.2):

1. The database decides what exists. A date's first journal is unique per (entity, date) and at
   most one journal per (entity, date) is unposted, so re-running a date rebuilds that row; a
   posted row is never rebuilt, and a change after it becomes an adjustment journal (the next
   sequence number for the same date), computed as today's figures minus what was posted.
2. Before calling Xero the push commits STARTED with the attempt's Idempotency-Key; its lines are
   frozen from then until Xero's answer is known.
3. Xero's Idempotency-Key only lasts about 6 minutes and manual journals have no business key, so
   the narration carries the journal's identity ("[bms-journal:<id>]"). A STARTED journal (the
   previous attempt's outcome is unknown: the reply was lost, the worker died) is first looked up
   by that tag and adopted when found; only when it is not there is it sent again — with the same
   key inside the window, with a new key after it.

No Xero call happens inside a database transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from admin_jobs.errors import JobSkipped, JobWait, PermanentJobError, TransientJobError
from admin_jobs.models import (
    UNFINISHED_STATES,
    BackgroundJob,
    JobDirection,
    JobKind,
    JobState,
    JobTrigger,
)
from admin_jobs.services import job_enqueue
from billing.models import Entity
from bms import clock
from journals.models import (
    REBUILDABLE_STATUSES,
    UNPOSTED_STATUSES,
    CostOfSalesJournal,
    CostOfSalesJournalLine,
    JournalStatus,
)
from journals.selectors import (
    ZERO,
    DayFigures,
    FigureLine,
    cost_of_sales_figures,
    journal_dates_changed,
    journal_posted_amounts,
)
from xero_integration.client import (
    JournalLine,
    ManualJournal,
    XeroClient,
    XeroPermanentError,
    XeroTransientError,
)
from xero_integration.models import (
    ConnectionStatus,
    XeroAccount,
    XeroConnection,
    XeroEntityLink,
)
from xero_integration.services import xero_client_for_entity

logger = logging.getLogger(__name__)

# Xero keeps an Idempotency-Key for 6 minutes; re-sending with the same key is only trusted for 5,
# leaving a minute for clock skew (reliability-notes.md §1.3).
IDEMPOTENCY_REUSE_WINDOW = timedelta(minutes=5)
FIRST_RUN_LOOKBACK_DAYS = 31
# Xero refuses manual journals to these account types (xero-api-notes.md §10).
REFUSED_ACCOUNT_TYPES = {"BANK", "INVENTORY"}
# A found journal in one of these states is not the one we posted any more.
GONE_XERO_STATUSES = {"DELETED", "VOIDED"}


@dataclass(frozen=True)
class JournalPostResult:
    journal: CostOfSalesJournal
    job: BackgroundJob | None


# --- Building -----------------------------------------------------------------------------------


def _lines_description(*, journal_date: date, amount: Decimal, adjustment: bool) -> str:
    what = "Cost of stock invoiced" if amount > 0 else "Stock invoiced"
    return f"{'Adjustment: ' if adjustment else ''}{what} on {journal_date.isoformat()}"


def _write_lines(*, journal: CostOfSalesJournal, lines: list[FigureLine], adjustment: bool) -> None:
    journal.lines.all().delete()
    CostOfSalesJournalLine.objects.bulk_create(
        CostOfSalesJournalLine(
            journal=journal,
            account_id=line.account_id,
            account_code=line.account_code,
            description=_lines_description(
                journal_date=journal.journal_date, amount=line.amount, adjustment=adjustment
            ),
            amount=line.amount,
        )
        for line in lines
    )
    journal.total_debit = sum((line.amount for line in lines if line.amount > 0), ZERO)


def _difference(*, figures: DayFigures, posted: dict[int, Decimal]) -> list[FigureLine]:
    """Today's figures minus what Xero already has, per account (both balance, so this does)."""
    lines = []
    for account_id in sorted(set(figures.lines) | set(posted)):
        now_line = figures.lines.get(account_id)
        amount = (now_line.amount if now_line else ZERO) - posted.get(account_id, ZERO)
        if amount == 0:
            continue
        if now_line is None:
            # The account is only on posted journals now (e.g. its only invoice was voided).
            row = CostOfSalesJournalLine.objects.filter(
                account_id=account_id, journal__status=JournalStatus.POSTED
            ).values_list("account_code", flat=True)
            now_line = FigureLine(account_id, str(row.first() or ""), "", ZERO)
        lines.append(FigureLine(account_id, now_line.account_code, now_line.account_name, amount))
    return lines


def _build_locked(
    *, entity: Entity, journal_date: date, figures: DayFigures, read_at: datetime
) -> CostOfSalesJournal:
    """Write the date's open journal from `figures`. Caller holds the entity's journal lock."""
    now = clock.now()
    journals = list(
        CostOfSalesJournal.objects.select_for_update()
        .filter(entity=entity, journal_date=journal_date)
        .order_by("sequence")
    )
    unposted = next((j for j in journals if j.status in UNPOSTED_STATUSES), None)
    if unposted is not None and unposted.status == JournalStatus.STARTED:
        # Its lines may already be in Xero: frozen until the push learns the outcome. A change
        # meanwhile is picked up as an adjustment once it is posted (its checked_at is older).
        return unposted
    posted = [j for j in journals if j.status == JournalStatus.POSTED]
    lines = (
        _difference(
            figures=figures, posted=journal_posted_amounts(entity=entity, journal_date=journal_date)
        )
        if posted
        else list(figures.lines.values())
    )
    if unposted is None:
        if posted and not lines and not figures.problems:
            # Checked, and Xero already says exactly this: nothing to write but the check time.
            latest = posted[-1]
            CostOfSalesJournal.objects.filter(pk=latest.pk).update(checked_at=read_at)
            latest.checked_at = read_at
            return latest
        unposted = CostOfSalesJournal(
            entity=entity,
            journal_date=journal_date,
            sequence=(journals[-1].sequence + 1) if journals else 0,
            currency=entity.base_currency,
            checked_at=read_at,
            created_at=now,
            updated_at=now,
        )
        unposted.save(force_insert=True)
    _write_lines(journal=unposted, lines=lines, adjustment=bool(posted))
    problems = list(figures.problems)
    if lines and not problems:
        # The pre-push check makes no Xero call, so "Ready to post" is only shown when it passes.
        link = XeroEntityLink.objects.select_related("connection").filter(entity=entity).first()
        if link is not None and link.connection is not None:
            problems = cost_of_sales_journal_check(journal=unposted, connection=link.connection)
    if problems:
        unposted.status = JournalStatus.FAILED
        unposted.last_error = _refusal_message(journal=unposted, problems=problems)
    else:
        unposted.status = JournalStatus.READY if lines else JournalStatus.NOTHING
        unposted.last_error = ""
    unposted.currency = entity.base_currency
    unposted.checked_at = read_at
    unposted.updated_at = now
    unposted.save()
    return unposted


def _lock_entity_journals(entity: Entity) -> None:
    # One builder per entity at a time: the (entity, date) rows may not exist yet, so there is no
    # row to lock but the entity's. Held only for the writes, never across a Xero call.
    Entity.objects.select_for_update().filter(pk=entity.pk).values_list("pk", flat=True).get()


def _build(*, entity: Entity, journal_date: date) -> CostOfSalesJournal:
    read_at = clock.now()
    figures = cost_of_sales_figures(entity=entity, journal_date=journal_date)
    _lock_entity_journals(entity)
    return _build_locked(entity=entity, journal_date=journal_date, figures=figures, read_at=read_at)


def cost_of_sales_journal_build(*, entity: Entity, journal_date: date) -> CostOfSalesJournal:
    """Create or rebuild the date's unposted journal from the current figures, or, when the date
    is posted, create (or rebuild) the adjustment for the difference. Returns the date's unposted
    journal, or its latest posted one when nothing differs. A STARTED journal is left alone."""
    if journal_date > clock.today_in(entity.timezone):
        raise ValidationError(
            f"{journal_date} has not started yet in {entity.name}'s time zone ({entity.timezone})."
        )
    for _ in range(2):
        try:
            with transaction.atomic():
                return _build(entity=entity, journal_date=journal_date)
        except IntegrityError:
            # Two builders raced to create the date's row; the second one rebuilds it instead.
            continue
    raise IntegrityError(f"Could not build the journal of {entity} for {journal_date}.")


def cost_of_sales_journal_rebuild(*, journal: CostOfSalesJournal) -> CostOfSalesJournal:
    """Admin → Journals "Rebuild": only an unposted journal whose lines have not been sent."""
    if journal.status not in REBUILDABLE_STATUSES:
        raise ValidationError(
            f"{journal} is {journal.get_status_display().lower()}: "
            + (
                "a posted journal is never rewritten; a change shows up as an adjustment."
                if journal.status == JournalStatus.POSTED
                else "Xero's answer to the last push is not known yet; press Push now to find it."
            )
        )
    return cost_of_sales_journal_build(entity=journal.entity, journal_date=journal.journal_date)


def _jobs_for(journal: CostOfSalesJournal) -> QuerySet[BackgroundJob]:
    return BackgroundJob.objects.filter(
        kind=JobKind.COST_OF_SALES_JOURNAL,
        target_content_type=ContentType.objects.get_for_model(CostOfSalesJournal),
        target_object_id=journal.pk,
    )


def _push_enqueue(
    *,
    journal: CostOfSalesJournal,
    triggered_by: str,
    user: AbstractBaseUser | None,
) -> BackgroundJob:
    return job_enqueue(
        kind=JobKind.COST_OF_SALES_JOURNAL,
        entity=journal.entity,
        target=journal,
        description=f"{journal.label} {journal.journal_date} — {journal.entity.name}",
        direction=JobDirection.EXPORT,
        triggered_by=triggered_by,
        user=user,
    )


def cost_of_sales_journal_post(
    *,
    entity: Entity,
    journal_date: date,
    triggered_by: str = JobTrigger.USER,
    user: AbstractBaseUser | None = None,
) -> JournalPostResult:
    """Build the date's journal (or adjustment) and queue its push, in one transaction, so a
    journal that needs posting always has a job. Nothing is queued for "nothing to post"."""
    if journal_date > clock.today_in(entity.timezone):
        raise ValidationError(
            f"{journal_date} has not started yet in {entity.name}'s time zone ({entity.timezone})."
        )
    for _ in range(2):
        try:
            with transaction.atomic():
                journal = _build(entity=entity, journal_date=journal_date)
                job = None
                if journal.status in (
                    JournalStatus.READY,
                    JournalStatus.FAILED,
                    JournalStatus.STARTED,
                ) and not (
                    # The schedule does not pile up a failed job per run: one unresolved failure
                    # says it already, and Retry now there rebuilds the journal.
                    triggered_by == JobTrigger.SCHEDULE
                    and journal.status == JournalStatus.FAILED
                    and _jobs_for(journal)
                    .filter(state=JobState.FAILED, resolved_at__isnull=True)
                    .exists()
                ):
                    # A failed build still gets a job: the failure and its fix then show on the
                    # Background Jobs page like any other.
                    job = _push_enqueue(journal=journal, triggered_by=triggered_by, user=user)
                return JournalPostResult(journal=journal, job=job)
        except IntegrityError:
            continue
    raise IntegrityError(f"Could not build the journal of {entity} for {journal_date}.")


def cost_of_sales_journal_push_enqueue(
    *, journal: CostOfSalesJournal, user: AbstractBaseUser | None
) -> BackgroundJob:
    """Admin → Journals "Push now"."""
    if journal.status in (JournalStatus.POSTED, JournalStatus.NOTHING):
        raise ValidationError(f"{journal} is {journal.get_status_display().lower()}.")
    with transaction.atomic():
        return _push_enqueue(journal=journal, triggered_by=JobTrigger.USER, user=user)


# --- Scheduling -----------------------------------------------------------------------------------


def cost_of_sales_journal_last_due_date(*, entity: Entity, now: datetime) -> date:
    """The latest date whose journal is due: yesterday once the entity's journal hour has passed
    locally, the day before otherwise."""
    local = now.astimezone(ZoneInfo(entity.timezone))
    days_back = 1 if local.hour >= entity.journal_hour else 2
    return local.date() - timedelta(days=days_back)


def _first_journal_date(*, entity: Entity, link: XeroEntityLink, through: date) -> date:
    """Journals start the day the entity was linked to Xero. The first run looks back at most
    FIRST_RUN_LOOKBACK_DAYS, so switching journals on for an entity linked long ago does not post
    its whole history (`journals_post --from/--to` backfills deliberately); once it has journals,
    every missing date since the first one is caught up."""
    earliest = (
        CostOfSalesJournal.objects.filter(entity=entity)
        .order_by("journal_date")
        .values_list("journal_date", flat=True)
        .first()
    )
    if earliest is not None:
        return earliest
    linked = link.linked_at.astimezone(ZoneInfo(entity.timezone)).date()
    return max(linked, through - timedelta(days=FIRST_RUN_LOOKBACK_DAYS))


def _stalled(*, entity: Entity) -> list[CostOfSalesJournal]:
    """Unposted journals that need a push but have no job that will run or that shows an error
    (e.g. a job cancelled by an admin)."""
    jobs = BackgroundJob.objects.filter(
        kind=JobKind.COST_OF_SALES_JOURNAL,
        target_object_id=OuterRef("pk"),
        target_content_type=ContentType.objects.get_for_model(CostOfSalesJournal),
    ).filter(Q(state__in=UNFINISHED_STATES) | Q(state=JobState.FAILED, resolved_at__isnull=True))
    return list(
        CostOfSalesJournal.objects.filter(
            entity=entity, status__in=[JournalStatus.READY, JournalStatus.STARTED]
        )
        .exclude(Exists(jobs))
        .order_by("journal_date", "sequence")
    )


def cost_of_sales_journals_catch_up(
    *,
    entity: Entity,
    through: date,
    triggered_by: str = JobTrigger.SCHEDULE,
    user: AbstractBaseUser | None = None,
) -> list[JournalPostResult]:
    """Post every date up to `through` that has no journal yet, and re-check every date whose
    documents changed since it was built, oldest first. Idempotent: a second run finds nothing."""
    link = XeroEntityLink.objects.filter(entity=entity).first()
    if link is None:
        return []
    first = _first_journal_date(entity=entity, link=link, through=through)
    if first > through:
        return []
    existing = set(
        CostOfSalesJournal.objects.filter(
            entity=entity, journal_date__gte=first, journal_date__lte=through
        ).values_list("journal_date", flat=True)
    )
    missing = {
        first + timedelta(days=n)
        for n in range((through - first).days + 1)
        if first + timedelta(days=n) not in existing
    }
    changed = set(journal_dates_changed(entity=entity, first_date=first, through=through))
    results = [
        cost_of_sales_journal_post(
            entity=entity, journal_date=day, triggered_by=triggered_by, user=user
        )
        for day in sorted(missing | changed)
    ]
    with transaction.atomic():
        for journal in _stalled(entity=entity):
            job = _push_enqueue(journal=journal, triggered_by=triggered_by, user=user)
            results.append(JournalPostResult(journal=journal, job=job))
    return results


def cost_of_sales_journals_run(
    *, now: datetime | None = None
) -> dict[str, list[JournalPostResult]]:
    """The hourly run: every entity connected to Xero whose journal hour has passed locally gets
    its missing dates posted (catching up missed nights in order) and changed dates re-checked."""
    now = now or clock.now()
    done: dict[str, list[JournalPostResult]] = {}
    # A disconnected or unauthorised entity is skipped rather than given waiting jobs every night:
    # the run after it is reconnected catches up every date it missed.
    entities = Entity.objects.filter(
        xero_link__connection__status=ConnectionStatus.CONNECTED
    ).order_by("code")
    for entity in entities:
        through = cost_of_sales_journal_last_due_date(entity=entity, now=now)
        try:
            done[entity.code] = cost_of_sales_journals_catch_up(entity=entity, through=through)
        except ValidationError as exc:
            logger.warning("journals for %s not scheduled: %s", entity.code, exc.messages)
    return done


# --- Pushing --------------------------------------------------------------------------------------


def _connection_for(entity: Entity) -> XeroConnection:
    link = XeroEntityLink.objects.select_related("connection").filter(entity=entity).first()
    if link is None or link.connection is None:
        raise JobWait(
            f"{entity.name} is not connected to Xero: connect it in Admin → Integrations; its "
            "jobs carry on after that.",
            until=None,
        )
    return link.connection


def cost_of_sales_journal_check(
    *, journal: CostOfSalesJournal, connection: XeroConnection
) -> list[str]:
    """Why Xero would refuse this journal, each with the fix; empty when it may be pushed. Uses
    the organisation's chart of accounts as last pulled, so it makes no Xero call."""
    entity = journal.entity
    if connection.accounts_pulled_at is None:
        return [
            f"BMS has not read the chart of accounts of the Xero organisation "
            f"“{connection.tenant_name}”. Pull the accounts in Admin → Accounts first."
        ]
    problems = []
    if connection.base_currency and connection.base_currency != entity.base_currency:
        problems.append(
            f"{entity.name} keeps its costs in {entity.base_currency} but the Xero organisation "
            f"“{connection.tenant_name}” reports in {connection.base_currency}. BMS cannot post "
            "its cost of sales until a currency-rate policy exists; tell your developer."
        )
    lines = list(journal.lines.all())
    if len(lines) < 2:
        problems.append("A manual journal needs at least two lines; press Rebuild.")
    debits = sum((line.amount for line in lines if line.amount > 0), ZERO)
    credits = sum((line.amount for line in lines if line.amount < 0), ZERO)
    if debits + credits != 0:
        problems.append(
            f"The journal does not balance: debits {debits} and credits {-credits} differ by "
            f"{debits + credits}. Press Rebuild to recompute it from the invoices."
        )
    accounts = {
        account.code: account
        for account in XeroAccount.objects.filter(
            connection=connection, code__in=[line.account_code for line in lines]
        )
    }
    for line in lines:
        found = accounts.get(line.account_code)
        where = f"the Xero organisation “{connection.tenant_name}”"
        fix_products = "change the account on the products that use it (Billing → Products)"
        if found is None:
            problems.append(
                f"Account {line.account_code} does not exist in {where}: create it in Xero or "
                f"{fix_products}, then pull the accounts in Admin → Accounts."
            )
        elif found.status != "ACTIVE":
            problems.append(
                f"Account {found.code} {found.name} is {found.status.lower()} in Xero: restore it "
                f"in Xero or {fix_products}, then pull the accounts again."
            )
        elif found.type == "BANK":
            problems.append(
                f"Account {found.code} {found.name} is a bank account, and Xero refuses manual "
                f"journals to bank accounts: {fix_products} (stock on hand belongs in a current "
                "asset account such as 640 Stock on Hand)."
            )
        elif found.type == "INVENTORY":
            problems.append(
                f"Account {found.code} {found.name} is Xero's tracked inventory (INVENTORY) "
                f"account type, and Xero refuses manual journals to it: {fix_products} — use a "
                "current asset (CURRENT) account such as 640 Stock on Hand."
            )
        elif found.is_system_account:
            problems.append(
                f"Account {found.code} {found.name} is a Xero system account, and Xero refuses "
                f"manual journals to system accounts: {fix_products}."
            )
    return problems


def _refusal_message(*, journal: CostOfSalesJournal, problems: list[str]) -> str:
    return f"{journal} cannot be posted: " + " ".join(problems)


def _journal_fail(*, journal: CostOfSalesJournal, message: str, from_status: str) -> None:
    CostOfSalesJournal.objects.filter(pk=journal.pk, status=from_status).update(
        status=JournalStatus.FAILED, last_error=message, updated_at=clock.now()
    )


def _attempt_start(*, journal: CostOfSalesJournal, reuse_key: bool) -> CostOfSalesJournal:
    """Commit STARTED (and the key this attempt sends) before the call. A conditional update, so
    two pushes of one journal can never both send."""
    now = clock.now()
    with transaction.atomic():
        locked = CostOfSalesJournal.objects.select_for_update().get(pk=journal.pk)
        if locked.status not in (JournalStatus.READY, JournalStatus.STARTED) or (
            locked.status == JournalStatus.STARTED and locked.attempt != journal.attempt
        ):
            raise TransientJobError(
                f"{journal} changed while BMS was pushing it; it will be tried again."
            )
        if not reuse_key:
            locked.attempt += 1
            locked.idempotency_key = f"cos-journal:{locked.pk}:{locked.attempt}"
            locked.attempt_started_at = now
        locked.status = JournalStatus.STARTED
        locked.last_reply_lost = False
        locked.last_push_at = now
        locked.updated_at = now
        locked.save()
    return locked


def _adopt(
    *, journal: CostOfSalesJournal, found: ManualJournal, adopted: bool, note: str = ""
) -> CostOfSalesJournal:
    now = clock.now()
    CostOfSalesJournal.objects.filter(pk=journal.pk, status=JournalStatus.STARTED).update(
        status=JournalStatus.POSTED,
        xero_journal_id=found.manual_journal_id,
        xero_status=found.status,
        adopted=adopted,
        posted_at=now,
        last_error=note,
        updated_at=now,
    )
    journal.refresh_from_db()
    return journal


def _find_in_xero(*, client: XeroClient, journal: CostOfSalesJournal) -> list[ManualJournal]:
    found = client.manual_journals_find(narration_contains=journal.tag)
    # Contains() is a substring match; keep only this journal's exact tag, still in force.
    return [
        mj
        for mj in found
        if journal.tag in mj.narration and mj.status.upper() not in GONE_XERO_STATUSES
    ]


def _figures_changed(journal: CostOfSalesJournal) -> bool:
    return bool(
        journal_dates_changed(
            entity=journal.entity, first_date=journal.journal_date, through=journal.journal_date
        )
    )


def cost_of_sales_journal_push(*, journal: CostOfSalesJournal) -> CostOfSalesJournal:
    """Send the journal to Xero once. An unposted journal whose documents changed since it was
    built (or that failed) is rebuilt first; a STARTED one is looked up in Xero first.

    Raises the job engine's errors: JobSkipped (already posted, nothing to post),
    PermanentJobError with the fix (refused by the pre-push check or by Xero), and
    XeroTransientError / JobWait (retried or resumed by the engine)."""
    journal = CostOfSalesJournal.objects.select_related("entity").get(pk=journal.pk)
    entity = journal.entity
    if journal.status == JournalStatus.POSTED:
        raise JobSkipped(
            f"{journal} is already in Xero (manual journal {journal.xero_journal_id})."
        )
    if journal.status in (JournalStatus.FAILED, JournalStatus.NOTHING) or (
        journal.status == JournalStatus.READY and _figures_changed(journal)
    ):
        rebuilt = cost_of_sales_journal_build(entity=entity, journal_date=journal.journal_date)
        if rebuilt.pk != journal.pk or rebuilt.status in (
            JournalStatus.NOTHING,
            JournalStatus.POSTED,
        ):
            raise JobSkipped(f"Nothing to post for {journal}: Xero already has these figures.")
        journal = rebuilt
        if journal.status == JournalStatus.FAILED:
            raise PermanentJobError(journal.last_error, detail={"journal_id": journal.pk})
        journal.entity = entity
    connection = _connection_for(entity)
    if journal.status != JournalStatus.STARTED:
        problems = cost_of_sales_journal_check(journal=journal, connection=connection)
        if problems:
            message = _refusal_message(journal=journal, problems=problems)
            _journal_fail(journal=journal, message=message, from_status=journal.status)
            raise PermanentJobError(message, detail={"problems": problems})
    client = xero_client_for_entity(entity=entity)
    reuse_key = False
    if journal.status == JournalStatus.STARTED:
        # The last attempt's outcome is unknown: Xero may hold the journal already.
        found = _find_in_xero(client=client, journal=journal)
        if found:
            note = (
                f"Xero holds {len(found)} journals tagged {journal.tag}; reconciliation lists them."
                if len(found) > 1
                else ""
            )
            return _adopt(journal=journal, found=found[0], adopted=True, note=note)
        assert journal.attempt_started_at is not None
        # Not there: re-send. After a lost reply, inside Xero's window, with the same key (in
        # case the first request is still being processed, Xero then answers with its result).
        # Otherwise with a new key: Xero replays an error reply for the same key, and after the
        # window it would not recognise the key anyway (reliability-notes.md §1.3).
        reuse_key = (
            journal.last_reply_lost
            and clock.now() - journal.attempt_started_at < IDEMPOTENCY_REUSE_WINDOW
        )
    journal = _attempt_start(journal=journal, reuse_key=reuse_key)
    lines = [
        JournalLine(
            account_code=line.account_code, line_amount=line.amount, description=line.description
        )
        for line in journal.lines.all()
    ]
    try:
        created = client.manual_journal_create(
            narration=journal.narration,
            date=journal.journal_date,
            lines=lines,
            idempotency_key=journal.idempotency_key,
        )
    except XeroPermanentError as exc:
        # Xero refused it, so nothing was created: the journal may be rebuilt and pushed again.
        message = f"Xero refused {journal}: " + "; ".join(exc.messages)
        _journal_fail(journal=journal, message=message, from_status=JournalStatus.STARTED)
        raise PermanentJobError(message, detail=exc.detail) from None
    except XeroTransientError as exc:
        # Stays STARTED: the next attempt looks it up before sending anything.
        got_reply = isinstance(exc.detail, dict) and "status" in exc.detail
        CostOfSalesJournal.objects.filter(pk=journal.pk).update(
            last_error=exc.message, last_reply_lost=not got_reply, updated_at=clock.now()
        )
        raise
    return _adopt(journal=journal, found=created, adopted=False)


def journal_push_result(*, journal: CostOfSalesJournal) -> dict[str, Any]:
    return {
        "journal_id": journal.pk,
        "journal_date": journal.journal_date.isoformat(),
        "sequence": journal.sequence,
        "xero_journal_id": journal.xero_journal_id,
        "adopted": journal.adopted,
        "total": str(journal.total_debit),
    }
