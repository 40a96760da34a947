"""Time the customer and invoice list pages at 100,000 rows on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/list_pages_bench.py

DATABASE_URL names the server (any database on it); the bench creates its own scratch database
(bms_bench_lists), migrates it, bulk-inserts 100,000 customers and 100,000 invoices, times each
page through Django's test Client (first page, a search, a filter, a sort, the last page) and
prints the median milliseconds per request and the number of queries, then drops the database.
Options: --customers N, --invoices N, --repeat N, --keep (leave the database for EXPLAIN).
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SCRATCH_DB = "bms_bench_lists"
BATCH = 5_000


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


WORDS_A = ["Flat", "Long", "Short", "Double", "Cold", "Roasted", "Golden", "Smooth", "Bold", "Wild"]
WORDS_B = ["Bean", "Brew", "Cup", "Grind", "Crema", "Leaf", "Mill", "Pot", "Press", "Roast"]
WORDS_C = ["Café", "Kitchen", "Bakery", "Deli", "Bar", "House", "Co", "Ltd", "& Sons", "Kiosk"]


def populate(*, customer_count: int, invoice_count: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from billing.models import (
        Customer,
        DocumentStatus,
        Entity,
        Invoice,
        PaymentStatus,
        PaymentTermType,
    )

    rng = random.Random(2026)
    now = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    nz = Entity.objects.create(
        name="Kiwi Coffee Roasters Ltd",
        code="NZ",
        base_currency="NZD",
        timezone="Pacific/Auckland",
        invoice_prefix="NZ-INV-",
        credit_note_prefix="NZ-CN-",
    )
    uk = Entity.objects.create(
        name="Kiwi Coffee Roasters UK Ltd",
        code="UK",
        base_currency="GBP",
        timezone="Europe/London",
        invoice_prefix="UK-INV-",
        credit_note_prefix="UK-CN-",
    )
    entities = [nz, uk]
    started = time.perf_counter()
    for offset in range(0, customer_count, BATCH):
        batch = []
        for index in range(offset, min(offset + BATCH, customer_count)):
            entity = entities[index % 2]
            name = f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)} {rng.choice(WORDS_C)} {index:06d}"
            batch.append(
                Customer(
                    entity=entity,
                    name=name,
                    email=f"accounts{index}@customer{index % 997}.example",
                    phone=f"+64 9 {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
                    currency=entity.base_currency,
                    payment_terms_type=PaymentTermType.DAYSAFTERBILLDATE,
                    payment_terms_day=20,
                    is_archived=index % 20 == 0,
                    created_at=now,
                    updated_at=now,
                )
            )
        Customer.objects.bulk_create(batch)
    customer_ids = list(Customer.objects.values_list("id", "entity_id"))
    print(f"  {customer_count:,} customers in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    statuses = [DocumentStatus.DRAFT, DocumentStatus.RELEASED, DocumentStatus.VOID]
    for offset in range(0, invoice_count, BATCH):
        invoices: list[Invoice] = []
        for index in range(offset, min(offset + BATCH, invoice_count)):
            customer_id, entity_id = customer_ids[rng.randrange(len(customer_ids))]
            entity = nz if entity_id == nz.pk else uk
            status = rng.choices(statuses, weights=[2, 7, 1])[0]
            subtotal = Decimal(rng.randint(500, 500_000)) / 100
            tax = (subtotal * Decimal("0.15")).quantize(Decimal("0.01"))
            total = subtotal + tax
            paid = Decimal("0.00")
            payment_status = PaymentStatus.UNPAID
            if status == DocumentStatus.RELEASED and rng.random() < 0.5:
                paid, payment_status = total, PaymentStatus.PAID
            issue = date(2026, 11, 21) - timedelta(days=rng.randrange(365))
            invoices.append(
                Invoice(
                    entity=entity,
                    customer_id=customer_id,
                    number=f"{entity.invoice_prefix}{index + 1:06d}",
                    status=status,
                    payment_status=payment_status,
                    issue_date=issue,
                    due_date=issue + timedelta(days=20),
                    currency=entity.base_currency,
                    reference=f"PO {rng.randint(1000, 99999)}",
                    subtotal=subtotal,
                    total_tax=tax,
                    total=total,
                    amount_paid=paid,
                    amount_due=total - paid,
                    released_at=None if status == DocumentStatus.DRAFT else now,
                    created_at=now,
                    updated_at=now,
                )
            )
        Invoice.objects.bulk_create(invoices)
    print(f"  {invoice_count:,} invoices in {time.perf_counter() - started:.1f} s")

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user = get_user_model().objects.create_user(username="bench", is_staff=True)
    sample = Customer.objects.filter(is_archived=False).order_by("id")[customer_count // 2]
    nz_number = (
        Invoice.objects.filter(entity=nz)
        .order_by("id")
        .values_list("number", flat=True)[invoice_count // 3]
    )
    return {"user": user, "nz": nz, "sample_customer": sample, "nz_number": nz_number}


def time_page(client: Any, path: str, params: dict[str, Any], repeat: int) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path, params)  # warm the caches and the connection
    timings = []
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path, params)
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, params, response.status_code)
        queries = len(captured)
    return statistics.median(timings), queries


def run(context: dict[str, Any], repeat: int) -> None:
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse
    from django.utils.module_loading import import_string

    from billing import selectors
    from billing.forms import CustomerFilterForm, InvoiceFilterForm

    # Banner providers of apps still being built may not import yet; time billing alone then.
    for dotted in list(settings.BMS_BANNER_PROVIDERS):
        try:
            import_string(dotted)
        except ImportError:
            print(f"  (banner provider {dotted} not importable: left out)")
            settings.BMS_BANNER_PROVIDERS.remove(dotted)

    client = Client()
    client.force_login(context["user"])
    sample = context["sample_customer"]
    word = sample.name.split()[1].lower()
    pages = {
        "customers": (
            reverse("billing:customer_list"),
            lambda params: selectors.customer_list(filters=CustomerFilterForm(params).filters()),
            [
                ("first page", {}),
                (f"search q={word}", {"q": word}),
                (f"search q={sample.name[-6:]}", {"q": sample.name[-6:]}),
                ("filter entity=NZ, archived=all", {"entity": context["nz"].pk, "archived": "all"}),
                ("sort -created", {"sort": "-created"}),
                ("last page", None),
            ],
        ),
        "invoices": (
            reverse("billing:invoice_list"),
            lambda params: selectors.invoice_list(filters=InvoiceFilterForm(params).filters()),
            [
                ("first page", {}),
                (f"search q={word}", {"q": word}),
                (f"search q={context['nz_number']}", {"q": context["nz_number"]}),
                (
                    "filter NZ released unpaid",
                    {"entity": context["nz"].pk, "status": "released", "payment_status": "unpaid"},
                ),
                (
                    "filter issued 2026-10",
                    {"issue_date_from": "2026-10-01", "issue_date_to": "2026-10-31"},
                ),
                ("sort -total", {"sort": "-total"}),
                ("last page", None),
            ],
        ),
    }
    print(f"\n{'page':<10} {'request':<36} {'median ms':>10} {'queries':>8} {'rows':>8}")
    page_size = settings.BMS_LIST_PAGE_SIZE
    for page_name, (path, query, requests) in pages.items():
        for label, params in requests:
            rows = query(params or {}).count()
            if params is None:
                params = {"page": max(1, -(-rows // page_size))}
            median, queries = time_page(client, path, params, repeat)
            print(f"{page_name:<10} {label:<36} {median:>10.1f} {queries:>8} {rows:>8,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
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

    try:
        print(f"Scratch database {SCRATCH_DB}: migrating and loading")
        call_command("migrate", verbosity=0)
        context = populate(customer_count=args.customers, invoice_count=args.invoices)
        run(context, args.repeat)
    finally:
        connections.close_all()
        if args.keep:
            print(f"\nKept {SCRATCH_DB}; drop it with: DROP DATABASE {SCRATCH_DB};")
        else:
            _drop(maintenance)


if __name__ == "__main__":
    main()
