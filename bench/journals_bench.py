"""Time one day's cost-of-sales journal build at 1,000,000 invoice lines on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/journals_bench.py

DATABASE_URL names the server (any database on it); the bench creates its own scratch database
(bms_bench_journals), migrates it, and inserts with INSERT … SELECT generate_series (not the ORM):
one day's 100,000 released invoices × 10 lines = 1,000,000 invoice lines over 200 products on
6 account pairs, 10,000 credit-note lines that day, void invoices that day and busy neighbouring
days (which must not count), and a small day of 1,000 lines. It then builds the big day's journal
with journals.services.cost_of_sales_journal_build (database aggregation) and, over the same lines,
a naive per-line Python loop, and prints both times, both query counts and the speed-up, plus the
small day's query count (the same count at 1,000 and 1,000,000 lines). Then it drops the database.
Options: --invoices N (per day), --lines-per-invoice N, --keep.
"""

import argparse
import os
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SCRATCH_DB = "bms_bench_journals"
TARGET_SECONDS = 3.0
TARGET_SPEED_UP = 20.0
PRODUCTS = 200


def _server_urls() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("Set DATABASE_URL=postgres://user@host:port/anydb: the bench needs PostgreSQL.")
    maintenance = urlunparse(parsed._replace(scheme="postgresql", path="/postgres"))
    scratch = urlunparse(parsed._replace(path=f"/{SCRATCH_DB}"))
    return maintenance, scratch


def _drop(maintenance: str) -> None:
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


def _create(maintenance: str) -> None:
    _drop(maintenance)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{SCRATCH_DB}"')


def _insert_day(
    *,
    cursor: Any,
    entity_id: int,
    customer_id: int,
    prefix: str,
    start: datetime,
    invoices: int,
    lines_per_invoice: int,
    status: str = "released",
) -> None:
    """`invoices` invoices released through the local day starting at `start`, each with
    `lines_per_invoice` stock lines (unit cost copied from the product, as at release)."""
    cursor.execute(
        """
        INSERT INTO billing_invoice (entity_id, customer_id, number, status, payment_status,
            issue_date, due_date, currency, line_amount_type, reference, subtotal, total_tax,
            total, amount_paid, amount_credited, amount_due, released_at, voided_at, version,
            created_at, updated_at)
        SELECT %(entity)s, %(customer)s, %(prefix)s || g, %(status)s, 'unpaid',
            %(day)s, %(day)s::date + 20, 'NZD', 'Exclusive', '', 0, 0, 0, 0, 0, 0,
            %(start)s + (g * interval '86399 seconds' / %(n)s),
            CASE WHEN %(status)s = 'void' THEN %(start)s::timestamptz + interval '1 day' END,
            1, %(start)s, %(start)s::timestamptz + (g * interval '86399 seconds' / %(n)s)
        FROM generate_series(1, %(n)s) AS g
        """,
        {
            "entity": entity_id,
            "customer": customer_id,
            "prefix": prefix,
            "status": status,
            "day": start.date(),
            "start": start,
            "n": invoices,
        },
    )
    cursor.execute(
        """
        WITH products AS (
            SELECT id, unit_cost, row_number() OVER (ORDER BY id) - 1 AS k,
                   revenue_account_id, tax_rate_id
            FROM billing_product WHERE entity_id = %(entity)s
        )
        INSERT INTO billing_invoiceline (invoice_id, position, product_id, description, quantity,
            unit_price, discount_rate, account_id, tax_rate_id, line_amount, tax_amount, unit_cost)
        SELECT i.id, pos, p.id, 'Beans', 1 + ((i.id + pos) %% 7) * 0.5, 10, 0,
               p.revenue_account_id, p.tax_rate_id, 10, 1.5, p.unit_cost
        FROM billing_invoice i
        CROSS JOIN generate_series(1, %(lines)s) AS pos
        JOIN products p ON p.k = (i.id * 31 + pos * 7) %% %(products)s
        WHERE i.number LIKE %(like)s
        """,
        {
            "entity": entity_id,
            "lines": lines_per_invoice,
            "like": prefix + "%",
            # A constant modulus keeps the join a hash join.
            "products": PRODUCTS,
        },
    )


def populate(*, invoices: int, lines_per_invoice: int) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from django.db import DatabaseError, connection

    from billing.models import Account, AccountType, Customer, Entity, Product, TaxRate
    from bms import clock

    tz = ZoneInfo("Pacific/Auckland")
    big_day = clock.today_in("Pacific/Auckland") - timedelta(days=2)
    small_day = big_day - timedelta(days=3)
    now = clock.now()
    entity = Entity.objects.create(
        name="Kiwi Coffee Roasters Ltd",
        code="NZ",
        base_currency="NZD",
        timezone="Pacific/Auckland",
        invoice_prefix="NZ-INV-",
        credit_note_prefix="NZ-CN-",
    )
    customer = Customer.objects.create(
        entity=entity, name="Flat White Cafe", currency="NZD", created_at=now, updated_at=now
    )
    sales = Account.objects.create(entity=entity, code="200", name="Sales", type=AccountType.SALES)
    tax = TaxRate.objects.create(entity=entity, name="GST", rate=Decimal("15"))
    cos = [
        Account.objects.create(
            entity=entity, code=f"31{n}", name=f"COGS {n}", type=AccountType.DIRECTCOSTS
        )
        for n in range(3)
    ]
    stock = [
        Account.objects.create(
            entity=entity, code=f"64{n}", name=f"Stock {n}", type=AccountType.CURRENT
        )
        for n in range(2)
    ]
    Product.objects.bulk_create(
        Product(
            entity=entity,
            code=f"P{n:04d}",
            name=f"Product {n}",
            sale_price=Decimal("10.00"),
            unit_cost=Decimal(3 + n % 17) + Decimal(n % 100) / 100 + Decimal("0.0037"),
            revenue_account=sales,
            # Every tenth product is a service: no stock accounts, so no cost of sales.
            cost_of_sales_account=None if n % 10 == 9 else cos[n % 3],
            inventory_account=None if n % 10 == 9 else stock[n % 2],
            tax_rate=tax,
        )
        for n in range(PRODUCTS)
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The generated rows are consistent by construction, so the load skips the per-row
        # foreign-key triggers when allowed (a superuser); otherwise it just runs slower.
        try:
            cursor.execute("SET session_replication_role = replica")
        except DatabaseError:
            print("  (not a superuser: loading with foreign-key checks)")
        day_start = datetime.combine(big_day, datetime.min.time(), tzinfo=tz)
        common: dict[str, Any] = {
            "cursor": cursor,
            "entity_id": entity.pk,
            "customer_id": customer.pk,
        }
        _insert_day(**common, prefix="BIG-", start=day_start, invoices=invoices,
                    lines_per_invoice=lines_per_invoice)  # fmt: skip
        # Noise that must not count: the neighbouring days, and voids on the day itself.
        for offset, prefix in ((-1, "BEFORE-"), (1, "AFTER-")):
            _insert_day(**common, prefix=prefix, start=day_start + timedelta(days=offset),
                        invoices=invoices // 4, lines_per_invoice=lines_per_invoice)  # fmt: skip
        _insert_day(**common, prefix="VOID-", start=day_start, invoices=invoices // 20,
                    lines_per_invoice=lines_per_invoice, status="void")  # fmt: skip
        _insert_day(**common, prefix="SMALL-",
                    start=datetime.combine(small_day, datetime.min.time(), tzinfo=tz),
                    invoices=100, lines_per_invoice=10)  # fmt: skip
        cursor.execute(
            """
            INSERT INTO billing_creditnote (entity_id, customer_id, number, status, issue_date,
                currency, line_amount_type, reference, subtotal, total_tax, total,
                amount_allocated, remaining_credit, released_at, version, created_at, updated_at)
            SELECT %(entity)s, %(customer)s, 'BIG-CN-' || g, 'released', %(day)s, 'NZD',
                'Exclusive', '', 0, 0, 0, 0, 0, %(start)s::timestamptz + g * interval '8 seconds',
                1, %(start)s, %(start)s::timestamptz + g * interval '8 seconds'
            FROM generate_series(1, %(n)s) AS g
            """,
            {
                "entity": entity.pk,
                "customer": customer.pk,
                "day": big_day,
                "start": day_start,
                "n": max(invoices // 100, 1),
            },
        )
        cursor.execute(
            """
            INSERT INTO billing_creditnoteline (credit_note_id, position, product_id, description,
                quantity, unit_price, discount_rate, line_amount, tax_amount, unit_cost)
            SELECT c.id, pos, p.id, 'Returned', 1, 10, 0, 10, 1.5, p.unit_cost
            FROM billing_creditnote c CROSS JOIN generate_series(1, 10) AS pos
            JOIN billing_product p ON p.code = 'P' || lpad(((c.id + pos) % 200)::text, 4, '0')
            """
        )
        cursor.execute("RESET session_replication_role")
        cursor.execute("ANALYZE")
        cursor.execute(
            "SELECT count(*) FROM billing_invoiceline l "
            "JOIN billing_invoice i ON i.id = l.invoice_id WHERE i.number LIKE 'BIG-%'"
        )
        big_lines = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM billing_invoiceline")
        all_lines = cursor.fetchone()[0]
    credit_lines = max(invoices // 100, 1) * 10
    print(
        f"  inserted {all_lines:,} invoice lines ({big_lines:,} released on {big_day}) and "
        f"{credit_lines:,} credit-note lines in {time.perf_counter() - started:.1f} s"
    )
    return {"entity": entity, "big_day": big_day, "small_day": small_day, "lines": big_lines}


def naive_figures(*, entity: Any, journal_date: date) -> dict[str, Decimal]:
    """What a straightforward per-line loop would do: read every line and add it up in Python."""
    from billing.models import CreditNoteLine, DocumentStatus, InvoiceLine
    from journals.selectors import journal_day_bounds

    start, end = journal_day_bounds(entity=entity, journal_date=journal_date)
    pairs: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    invoice_lines = InvoiceLine.objects.filter(
        invoice__entity=entity,
        invoice__status=DocumentStatus.RELEASED,
        invoice__released_at__gte=start,
        invoice__released_at__lt=end,
    ).select_related("product__cost_of_sales_account", "product__inventory_account")
    credit_lines = CreditNoteLine.objects.filter(
        credit_note__entity=entity,
        credit_note__status=DocumentStatus.RELEASED,
        credit_note__released_at__gte=start,
        credit_note__released_at__lt=end,
    ).select_related("product__cost_of_sales_account", "product__inventory_account")
    codes: dict[int, str] = {}
    for lines, sign in ((invoice_lines, 1), (credit_lines, -1)):
        for line in lines.iterator(chunk_size=5000):
            product = line.product
            if product is None or product.cost_of_sales_account is None:
                continue
            if product.inventory_account is None:
                continue
            cos, stock = product.cost_of_sales_account, product.inventory_account
            codes[cos.pk], codes[stock.pk] = cos.code, stock.code
            pairs[(cos.pk, stock.pk)] += sign * line.quantity * (line.unit_cost or 0)
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    for (cos_id, stock_id), cost in pairs.items():
        rounded = cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        amounts[codes[cos_id]] += rounded
        amounts[codes[stock_id]] -= rounded
    return {code: amount for code, amount in amounts.items() if amount}


def run(context: dict[str, Any]) -> bool:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from journals.services import cost_of_sales_journal_build

    entity = context["entity"]
    with CaptureQueriesContext(connection) as small_queries:
        cost_of_sales_journal_build(entity=entity, journal_date=context["small_day"])

    with CaptureQueriesContext(connection) as service_queries:
        started = time.perf_counter()
        journal = cost_of_sales_journal_build(entity=entity, journal_date=context["big_day"])
        service_seconds = time.perf_counter() - started
    built = {line.account_code: line.amount for line in journal.lines.all()}

    with CaptureQueriesContext(connection) as loop_queries:
        started = time.perf_counter()
        looped = naive_figures(entity=entity, journal_date=context["big_day"])
        loop_seconds = time.perf_counter() - started

    assert built == looped, (built, looped)
    speed_up = loop_seconds / service_seconds
    print(f"\n  journal {journal.journal_date}: total {journal.total_debit} NZD over "
          f"{len(built)} account lines, from {context['lines']:,} invoice lines")  # fmt: skip
    print(f"\n  {'':<34} {'seconds':>9} {'queries':>8}")
    print(f"  {'aggregation (service)':<34} {service_seconds:>9.2f} {len(service_queries):>8}")
    print(f"  {'naive per-line loop':<34} {loop_seconds:>9.2f} {len(loop_queries):>8}")
    print(f"  {'service on a 1,000-line day':<34} {'':>9} {len(small_queries):>8}")
    print(f"\n  speed-up: {speed_up:.0f}×  (same figures: {built == looped})")
    ok = (
        service_seconds <= TARGET_SECONDS
        and speed_up >= TARGET_SPEED_UP
        and len(small_queries) == len(service_queries)
    )
    print(
        f"  targets: ≤ {TARGET_SECONDS:.0f} s, ≥ {TARGET_SPEED_UP:.0f}×, constant query count → "
        f"{'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--lines-per-invoice", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    maintenance, scratch = _server_urls()
    _create(maintenance)
    os.environ["DATABASE_URL"] = scratch
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bms.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    ok = False
    try:
        print(f"Scratch database {SCRATCH_DB}: migrating and loading")
        call_command("migrate", verbosity=0)
        context = populate(invoices=args.invoices, lines_per_invoice=args.lines_per_invoice)
        ok = run(context)
    finally:
        connections.close_all()
        if args.keep:
            print(f"\nKept {SCRATCH_DB}; drop it with: DROP DATABASE {SCRATCH_DB};")
        else:
            _drop(maintenance)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
