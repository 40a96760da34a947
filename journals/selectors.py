"""Reads for cost-of-sales journals: the day's figures (aggregated in the database), which dates
need another look, the Admin → Journals list, and links to Xero."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    Count,
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import TruncDate

from billing.models import (
    CreditNote,
    CreditNoteLine,
    DocumentStatus,
    Entity,
    Invoice,
    InvoiceLine,
    Product,
)
from journals.models import CostOfSalesJournal, CostOfSalesJournalLine, JournalStatus
from xero_integration.models import XeroEntityLink

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# quantity (4 dp) × unit cost (4 dp) is exact with 8 decimals; summed in PostgreSQL's numeric.
_COST = DecimalField(max_digits=38, decimal_places=8)
# A document whose transaction committed just after a check read the figures may carry an
# updated_at slightly before that check; looking this far back catches it on the next run.
CHECK_MARGIN = timedelta(minutes=2)
PRODUCTION_API_BASE = "https://api.xero.com"


@dataclass(frozen=True)
class FigureLine:
    account_id: int
    account_code: str
    account_name: str
    amount: Decimal  # debit +, credit −


@dataclass
class DayFigures:
    lines: dict[int, FigureLine] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    invoice_lines: int = 0
    credit_note_lines: int = 0


def journal_day_bounds(*, entity: Entity, journal_date: date) -> tuple[datetime, datetime]:
    """The entity's local day as an aware [start, end) range (23 or 25 hours across DST)."""
    tz = ZoneInfo(entity.timezone)
    start = datetime.combine(journal_date, time.min, tzinfo=tz)
    end = datetime.combine(journal_date + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


_GROUP = (
    "product__cost_of_sales_account_id",
    "product__cost_of_sales_account__code",
    "product__cost_of_sales_account__name",
    "product__inventory_account_id",
    "product__inventory_account__code",
    "product__inventory_account__name",
)


def _grouped(lines: QuerySet[InvoiceLine] | QuerySet[CreditNoteLine]) -> list[dict[str, object]]:
    """One query: each (cost-of-sales account, stock account) pair with its exact cost."""
    return list(
        lines.filter(product__isnull=False)
        .values(*_GROUP)
        .annotate(
            cost=Sum(ExpressionWrapper(F("quantity") * F("unit_cost"), output_field=_COST)),
            lines=Count("id"),
            missing_cost=Count("id", filter=Q(unit_cost__isnull=True)),
        )
        .order_by()
    )


def cost_of_sales_figures(*, entity: Entity, journal_date: date) -> DayFigures:
    """What the day's journal must say: debit each cost-of-sales account and credit each stock
    account with quantity × unit cost (as copied at release) of the stock lines of invoices released
    that local day, less the credit notes released that day. Void documents do not count.

    Two aggregate queries whatever the number of lines. Each account pair is rounded to the cent
    once, after netting, so the debits and credits always balance exactly.
    """
    start, end = journal_day_bounds(entity=entity, journal_date=journal_date)
    invoiced = _grouped(
        InvoiceLine.objects.filter(
            invoice__entity=entity,
            invoice__status=DocumentStatus.RELEASED,
            invoice__released_at__gte=start,
            invoice__released_at__lt=end,
        )
    )
    credited = _grouped(
        CreditNoteLine.objects.filter(
            credit_note__entity=entity,
            credit_note__status=DocumentStatus.RELEASED,
            credit_note__released_at__gte=start,
            credit_note__released_at__lt=end,
        )
    )
    figures = DayFigures()
    pairs: dict[tuple[int, int], Decimal] = {}
    names: dict[int, tuple[str, str]] = {}
    misconfigured = 0
    missing_cost = 0
    for rows, sign in ((invoiced, 1), (credited, -1)):
        for row in rows:
            count = int(row["lines"])  # type: ignore[call-overload]
            if sign > 0:
                figures.invoice_lines += count
            else:
                figures.credit_note_lines += count
            cos_id = row["product__cost_of_sales_account_id"]
            stock_id = row["product__inventory_account_id"]
            if cos_id is None and stock_id is None:
                continue  # a service or non-stock product: it has no cost of sales
            if cos_id is None or stock_id is None:
                misconfigured += count
                continue
            missing_cost += int(row["missing_cost"])  # type: ignore[call-overload]
            assert isinstance(cos_id, int) and isinstance(stock_id, int)
            names[cos_id] = (
                str(row["product__cost_of_sales_account__code"]),
                str(row["product__cost_of_sales_account__name"]),
            )
            names[stock_id] = (
                str(row["product__inventory_account__code"]),
                str(row["product__inventory_account__name"]),
            )
            cost = row["cost"] or ZERO
            assert isinstance(cost, Decimal)
            pairs[(cos_id, stock_id)] = pairs.get((cos_id, stock_id), ZERO) + sign * cost
    if misconfigured:
        figures.problems.append(_misconfigured_message(entity=entity, start=start, end=end))
    if missing_cost:
        figures.problems.append(
            f"{missing_cost} stock line(s) released on {journal_date} have no unit cost (it is "
            "copied from the product at release). Set the product's unit cost, then correct the "
            "line, and press Rebuild."
        )
    amounts: dict[int, Decimal] = {}
    for (cos_id, stock_id), cost in pairs.items():
        rounded = cost.quantize(CENT, rounding=ROUND_HALF_UP)
        amounts[cos_id] = amounts.get(cos_id, ZERO) + rounded
        amounts[stock_id] = amounts.get(stock_id, ZERO) - rounded
    for account_id, amount in amounts.items():
        if amount != 0:
            code, name = names[account_id]
            figures.lines[account_id] = FigureLine(account_id, code, name, amount)
    return figures


def _misconfigured_message(*, entity: Entity, start: datetime, end: datetime) -> str:
    # Only on the error path: name the products so the fix is obvious.
    one_missing = Q(cost_of_sales_account__isnull=True, inventory_account__isnull=False) | Q(
        cost_of_sales_account__isnull=False, inventory_account__isnull=True
    )
    sold = Q(
        pk__in=InvoiceLine.objects.filter(
            invoice__entity=entity, invoice__released_at__gte=start, invoice__released_at__lt=end
        ).values("product_id")
    ) | Q(
        pk__in=CreditNoteLine.objects.filter(
            credit_note__entity=entity,
            credit_note__released_at__gte=start,
            credit_note__released_at__lt=end,
        ).values("product_id")
    )
    codes = list(
        Product.objects.filter(one_missing, sold, entity=entity)
        .order_by("code")
        .values_list("code", flat=True)[:10]
    )
    return (
        f"Product(s) {', '.join(codes)} have a cost-of-sales account or a stock account but not "
        "both: set both on each product in Billing → Products (or neither, for a non-stock "
        "product), then press Rebuild."
    )


def journal_posted_amounts(*, entity: Entity, journal_date: date) -> dict[int, Decimal]:
    """Per account, what the day's posted journals already put in Xero (one query)."""
    rows = (
        CostOfSalesJournalLine.objects.filter(
            journal__entity=entity,
            journal__journal_date=journal_date,
            journal__status=JournalStatus.POSTED,
        )
        .values("account_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["account_id"]: row["total"] for row in rows}


def journal_dates_changed(*, entity: Entity, first_date: date, through: date) -> list[date]:
    """Dates that already have a journal but whose invoices or credit notes changed (released,
    voided, corrected) after the day's figures were last read. One query per document type."""
    tz = ZoneInfo(entity.timezone)
    start = journal_day_bounds(entity=entity, journal_date=first_date)[0]
    end = journal_day_bounds(entity=entity, journal_date=through)[1]
    last_checked = (
        CostOfSalesJournal.objects.filter(entity=entity, journal_date=OuterRef("local_date"))
        .order_by("-checked_at")
        .values("checked_at")[:1]
    )
    found: set[date] = set()
    for model in (Invoice, CreditNote):
        dates = (
            model.objects.filter(entity=entity, released_at__gte=start, released_at__lt=end)
            .annotate(local_date=TruncDate("released_at", tzinfo=tz))
            .annotate(
                last_checked=ExpressionWrapper(
                    Subquery(last_checked) - Value(CHECK_MARGIN), output_field=DateTimeField()
                )
            )
            .filter(updated_at__gt=F("last_checked"))
            .values_list("local_date", flat=True)
            .distinct()
        )
        found.update(dates)
    return sorted(found)


def journal_list(
    *, entity: Entity | None = None, status: str | None = None
) -> QuerySet[CostOfSalesJournal]:
    journals = CostOfSalesJournal.objects.select_related("entity").prefetch_related(
        Prefetch("lines", queryset=CostOfSalesJournalLine.objects.order_by("-amount"))
    )
    if entity is not None:
        journals = journals.filter(entity=entity)
    if status:
        journals = journals.filter(status=status)
    return journals.order_by("-journal_date", "entity__name", "sequence")


def _tenant_id(entity_id: int) -> str | None:
    return (
        XeroEntityLink.objects.filter(entity_id=entity_id)
        .values_list("tenant_id", flat=True)
        .first()
    )


def _sandbox_base() -> str | None:
    """The demo and tests point XERO_API_BASE at the sandbox, whose UI stands in for Xero's."""
    base = str(settings.XERO_API_BASE).rstrip("/")
    return None if base == PRODUCTION_API_BASE else base


def xero_journal_url(*, journal_id: str, tenant_id: str | None) -> str:
    if not journal_id:
        return ""
    sandbox = _sandbox_base()
    if sandbox is not None:
        # The sandbox lists manual journals on the organisation's overview page.
        return f"{sandbox}/__sandbox__/ui/{tenant_id}/" if tenant_id else ""
    return f"https://go.xero.com/Journal/View.aspx?invoiceID={journal_id}"


def xero_invoice_url(*, invoice_id: str, tenant_id: str) -> str:
    sandbox = _sandbox_base()
    if sandbox is not None:
        return f"{sandbox}/__sandbox__/ui/{tenant_id}/invoices/{invoice_id}"
    return f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={invoice_id}"


def xero_contact_url(*, contact_id: str, tenant_id: str) -> str:
    sandbox = _sandbox_base()
    if sandbox is not None:
        return f"{sandbox}/__sandbox__/ui/{tenant_id}/contacts/{contact_id}"
    return f"https://go.xero.com/Contacts/View/{contact_id}"


def journal_xero_url(*, journal: CostOfSalesJournal) -> str:
    return xero_journal_url(
        journal_id=journal.xero_journal_id, tenant_id=_tenant_id(journal.entity_id)
    )


def journal_tenant_ids(*, entity_ids: list[int]) -> dict[int, str]:
    return dict(
        XeroEntityLink.objects.filter(entity_id__in=entity_ids).values_list(
            "entity_id", "tenant_id"
        )
    )
