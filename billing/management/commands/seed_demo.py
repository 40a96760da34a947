"""Demo data matching the Xero sandbox's demo organisations.

Idempotent: every row has a natural key (entity code; account code, tax rate name, product code and
customer name per entity; invoice and credit note reference such as DEMO-0001), so a second run
adds only what is missing. Generated values come from random.Random(2026) and the whole plan is
drawn before anything is written, so a re-run draws the same values. Customers, invoices, payments
and credit notes go through billing/services.py, so the demo data obeys every rule. Entities,
accounts, tax rates and products have no services yet: they are created here with full_clean().
"""

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.checks import Tags
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Model
from django.utils.text import slugify

from billing import services
from billing.models import (
    Account,
    AccountType,
    CreditNote,
    Customer,
    DocumentStatus,
    Entity,
    Invoice,
    LineAmountType,
    PaymentMethod,
    PaymentTermType,
    Product,
    TaxRate,
)
from billing.services import LineInput
from bms import clock
from core.models import AccountingPackage
from core.services import general_settings_update

SEED = 2026
INVOICE_COUNT = 150
DAYS_BACK = 30
CENT = Decimal("0.01")


@dataclass(frozen=True)
class EntitySpec:
    code: str
    name: str
    currency: str
    timezone: str
    invoice_prefix: str
    credit_note_prefix: str
    sales_tax_account_name: str
    tax_rates: list[tuple[str, Decimal, str]]
    default_tax: str
    food_tax: str
    email_domain: str
    phone_prefix: str
    cities: list[tuple[str, str, str]]  # city, region, postal code
    country: str
    customer_names: list[str]
    price_factor: Decimal


ACCOUNTS = [
    ("090", "Business Bank Account", AccountType.BANK),
    ("200", "Sales", AccountType.REVENUE),
    ("260", "Other Revenue", AccountType.REVENUE),
    ("310", "Cost of Goods Sold", AccountType.DIRECTCOSTS),
    ("400", "Advertising", AccountType.EXPENSE),
    ("610", "Accounts Receivable", AccountType.CURRENT),
    ("630", "Inventory", AccountType.INVENTORY),
    ("640", "Stock on Hand", AccountType.CURRENT),
    ("800", "Accounts Payable", AccountType.CURRLIAB),
    ("820", None, AccountType.CURRLIAB),  # GST (NZ) / VAT (UK)
    ("960", "Retained Earnings", AccountType.EQUITY),
]

# code, name, NZD price, NZD unit cost, is stock (cost of sales + stock on hand), is food
PRODUCTS = [
    ("BEAN-ESP-1KG", "Espresso blend beans 1kg", "42.50", "18.20", True, True),
    ("BEAN-ETH-250", "Single origin Ethiopia Yirgacheffe 250g", "18.90", "7.10", True, True),
    ("BEAN-DECAF-1KG", "Swiss water decaf beans 1kg", "45.00", "20.00", True, True),
    ("CHAI-1KG", "Spiced chai powder 1kg", "38.75", "15.00", True, True),
    ("MILK-OAT-1L", "Barista oat milk 1L", "4.20", "2.10", True, True),
    ("CUP-8OZ-1000", "Compostable cups 8oz (carton of 1000)", "189.00", "95.00", True, False),
    ("SYRUP-VAN-750", "Vanilla syrup 750ml", "16.50", "6.40", True, False),
    ("GREEN-SAMPLE-G", "Green bean sample (per gram)", "0.0375", "0.0150", True, True),
    ("SVC-GRINDER", "Grinder service and burr replacement", "120.00", "0", False, False),
    ("SVC-TRAINING", "Barista training (per hour)", "95.00", "0", False, False),
]

LONG_NAME_BASE = (
    "The Extraordinarily Long-Named Cooperative of Independent Neighbourhood Coffee Houses, "
    "Espresso Carts, Tea Rooms, Bakeries and Late-Night Dessert Bars of the Greater Auckland "
    "Region (Including the North Shore, Waitākere, Manukau and Hibiscus Coast Branches) Limited"
)


def long_customer_name() -> str:
    """Exactly 255 characters: the longest name Xero accepts for a contact."""
    name = (LONG_NAME_BASE + " Partnership" * 10)[:255]
    return name[:-1] + "." if name.endswith(" ") else name


ENTITIES = [
    EntitySpec(
        code="NZ",
        name="Kiwi Coffee Roasters Ltd",
        currency="NZD",
        timezone="Pacific/Auckland",
        invoice_prefix="NZ-INV-",
        credit_note_prefix="NZ-CN-",
        sales_tax_account_name="GST",
        tax_rates=[
            ("15% GST on Income", Decimal("15"), "OUTPUT2"),
            ("No GST", Decimal("0"), "NONE"),
            ("Zero Rated", Decimal("0"), "ZERORATED"),
        ],
        default_tax="15% GST on Income",
        food_tax="15% GST on Income",
        email_domain="example.co.nz",
        phone_prefix="+64 9 ",
        cities=[
            ("Auckland", "Auckland", "1010"),
            ("Wellington", "Wellington", "6011"),
            ("Christchurch", "Canterbury", "8011"),
            ("Dunedin", "Otago", "9016"),
            ("Tauranga", "Bay of Plenty", "3110"),
        ],
        country="New Zealand",
        customer_names=[
            "Café Mañana Ltd",
            "O'Reilly & Sons",
            "<b>Bold</b> Beans",
            long_customer_name(),
            "Aroha Espresso Bar",
            "Wellington Brew Co",
            "Karori Kitchen",
            "Ponsonby Pantry",
            "Mt Eden Bakehouse",
            "Tauranga Tea Rooms",
            "Queenstown Lodge Café",
            "Dunedin Daily Grind",
            "Rotorua Roast House",
            "Nelson Nosh",
            "Kiwi Corner Dairy",
            "Hamilton Hub Café",
            "Napier Deco Diner",
            "Whanganui Wharf Café",
            "Taupō Lakefront Café",
            "Petone Beach Kiosk",
        ],
        price_factor=Decimal("1"),
    ),
    EntitySpec(
        code="UK",
        name="Kiwi Coffee Roasters UK Ltd",
        currency="GBP",
        timezone="Europe/London",
        invoice_prefix="UK-INV-",
        credit_note_prefix="UK-CN-",
        sales_tax_account_name="VAT",
        tax_rates=[
            ("20% (VAT on Income)", Decimal("20"), "OUTPUT2"),
            ("5% (VAT on Income)", Decimal("5"), "RROUTPUT"),
            ("Zero Rated Income", Decimal("0"), "ZERORATEDOUTPUT"),
            ("No VAT", Decimal("0"), "NONE"),
        ],
        default_tax="20% (VAT on Income)",
        # Coffee beans and most food sold for home use are zero-rated in the UK.
        food_tax="Zero Rated Income",
        email_domain="example.co.uk",
        phone_prefix="+44 20 ",
        cities=[
            ("London", "Greater London", "EC1A 1BB"),
            ("Manchester", "Greater Manchester", "M1 1AE"),
            ("Bristol", "Bristol", "BS1 4DJ"),
            ("Edinburgh", "Midlothian", "EH1 1YZ"),
            ("Leeds", "West Yorkshire", "LS1 4DY"),
        ],
        country="United Kingdom",
        customer_names=[
            "Zoë's Crêperie",
            "The Fox & Hound",
            "Brixton Bean Co",
            "Camden Lock Coffee",
            "Bath Bun Bakery",
            "Shoreditch Sourdough",
            "Leeds Loaf Ltd",
            "Mancunian Mugs",
            "Bristol Harbour Café",
            "Edinburgh Espresso",
            "Cardiff Cwtch Café",
            "Belfast Brew House",
            "York Minster Tea Shop",
            "Oxford Scholars' Café",
            "Cambridge Punt Coffee",
            "Brighton Pier Kiosk",
            "Norwich Lanes Deli",
            "Glasgow Grind",
            "Liverpool Docks Diner",
            "Exeter Quay Café",
        ],
        price_factor=Decimal("0.48"),
    ),
]
ARCHIVED_PER_ENTITY = 3  # the last names of each list; they have no invoices

TERMS = [
    (PaymentTermType.DAYSAFTERBILLDATE, [7, 14, 20, 30]),
    (PaymentTermType.DAYSAFTERBILLMONTH, [20, 30]),
    (PaymentTermType.OFCURRENTMONTH, [20, 25, 28]),
    (PaymentTermType.OFFOLLOWINGMONTH, [5, 20]),
]

# Invoice outcome → weight.
OUTCOMES = {"draft": 2, "unpaid": 3, "part_paid": 2, "paid": 3, "void_draft": 1, "void": 1}


@dataclass
class LinePlan:
    product_code: str | None
    description: str
    quantity: Decimal
    discount_rate: Decimal
    unit_price: Decimal | None


@dataclass
class InvoicePlan:
    reference: str
    entity_code: str
    customer_name: str
    days_ago: int
    line_amount_type: str
    lines: list[LinePlan]
    outcome: str
    payment_fraction: Decimal
    payment_days: int
    payment_method: str
    second_payment: bool


@dataclass
class CreditNotePlan:
    reference: str
    invoice_reference: str
    product_code: str
    quantity: Decimal
    release: bool
    allocate: bool


@dataclass
class Summary:
    created: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, count: int = 1) -> None:
        self.created[kind] = self.created.get(kind, 0) + count


class Command(BaseCommand):
    help = "Create realistic demo data (two Xero demo organisations); safe to run repeatedly."
    # Seeding never talks to Xero, so a missing Xero credential (a deployment check) must not stop
    # it; the model checks still run.
    requires_system_checks = [Tags.models]

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(SEED)
        summary = Summary()
        general_settings_update(accounting_package=AccountingPackage.XERO, user=None)
        entities = {spec.code: self._entity(spec, summary) for spec in ENTITIES}
        for spec in ENTITIES:
            self._chart(entities[spec.code], spec, summary)
            self._products(entities[spec.code], spec, summary)
        for spec in ENTITIES:
            self._customers(entities[spec.code], spec, rng, summary)
        invoice_plans = self._invoice_plans(rng)
        credit_plans = self._credit_note_plans(rng, invoice_plans)
        self._invoices(entities, invoice_plans, summary)
        self._credit_notes(entities, invoice_plans, credit_plans, summary)
        self._archive_customers(entities)
        self._users(summary)
        created = ", ".join(f"{count} {kind}" for kind, count in summary.created.items())
        self.stdout.write(f"Created: {created or 'nothing (already seeded)'}.")
        self.stdout.write(
            f"Now {Customer.objects.count()} customers, {Invoice.objects.count()} invoices, "
            f"{CreditNote.objects.count()} credit notes."
        )
        self.stdout.write("Demo users: admin / admin (admin), clerk / clerk (staff).")

    # --- Reference data (no services exist for these yet) --------------------------------------

    def _ensure(
        self, model: type[Model], summary: Summary, lookup: dict[str, Any], values: dict[str, Any]
    ) -> Any:
        row = model._default_manager.filter(**lookup).first()
        if row is None:
            row = model(**lookup, **values)
            row.full_clean()
            row.save()
            summary.add(str(model._meta.verbose_name_plural))
        return row

    def _entity(self, spec: EntitySpec, summary: Summary) -> Entity:
        entity: Entity = self._ensure(
            Entity,
            summary,
            {"code": spec.code},
            {
                "name": spec.name,
                "base_currency": spec.currency,
                "timezone": spec.timezone,
                "invoice_prefix": spec.invoice_prefix,
                "credit_note_prefix": spec.credit_note_prefix,
            },
        )
        return entity

    def _chart(self, entity: Entity, spec: EntitySpec, summary: Summary) -> None:
        for code, name, account_type in ACCOUNTS:
            self._ensure(
                Account,
                summary,
                {"entity": entity, "code": code},
                {"name": name or spec.sales_tax_account_name, "type": account_type},
            )
        for name, rate, tax_type in spec.tax_rates:
            self._ensure(
                TaxRate,
                summary,
                {"entity": entity, "name": name},
                {"rate": rate, "xero_tax_type": tax_type},
            )

    def _products(self, entity: Entity, spec: EntitySpec, summary: Summary) -> None:
        accounts = {account.code: account for account in entity.accounts.all()}
        tax_rates = {rate.name: rate for rate in entity.tax_rates.all()}
        for code, name, price, cost, is_stock, is_food in PRODUCTS:
            self._ensure(
                Product,
                summary,
                {"entity": entity, "code": code},
                {
                    "name": name,
                    "sale_price": _scaled(Decimal(price), spec.price_factor),
                    "unit_cost": _scaled(Decimal(cost), spec.price_factor),
                    "revenue_account": accounts["200"],
                    "cost_of_sales_account": accounts["310"] if is_stock else None,
                    "inventory_account": accounts["640"] if is_stock else None,
                    "tax_rate": tax_rates[spec.food_tax if is_food else spec.default_tax],
                },
            )

    # --- Customers ------------------------------------------------------------------------------

    def _customers(
        self, entity: Entity, spec: EntitySpec, rng: random.Random, summary: Summary
    ) -> None:
        existing = set(entity.customers.values_list("name", flat=True))
        for index, name in enumerate(spec.customer_names):
            terms_type, days = TERMS[index % len(TERMS)]
            city, region, postcode = spec.cities[rng.randrange(len(spec.cities))]
            terms_day = rng.choice(days)
            street_number = rng.randint(1, 480)
            phone = f"{spec.phone_prefix}{rng.randint(200, 999)} {rng.randint(1000, 9999)}"
            tax_number = (
                f"{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}"
                if spec.code == "NZ"
                else f"GB{rng.randint(100000000, 999999999)}"
            )
            if name in existing:
                continue
            slug = slugify(name)[:40].strip("-") or "customer"
            services.customer_create(
                entity=entity,
                name=name,
                email=f"accounts@{slug}.{spec.email_domain}",
                phone=phone,
                tax_number=tax_number,
                account_number=f"{spec.code}-C{index + 1:03d}",
                payment_terms_type=terms_type,
                payment_terms_day=terms_day,
                street_line1=f"{street_number} {rng.choice(['Queen', 'High', 'Station', 'Mill'])} "
                "Street",
                street_city=city,
                street_region=region,
                street_postal_code=postcode,
                street_country=spec.country,
                postal_line1=f"PO Box {street_number * 7}",
                postal_city=city,
                postal_postal_code=postcode,
                postal_country=spec.country,
            )
            summary.add("customers")

    def _archive_customers(self, entities: dict[str, Entity]) -> None:
        for spec in ENTITIES:
            for name in spec.customer_names[-ARCHIVED_PER_ENTITY:]:
                customer = Customer.objects.get(entity=entities[spec.code], name=name)
                if not customer.is_archived:
                    services.customer_archive(customer=customer)

    # --- Invoices ---------------------------------------------------------------------------------

    def _invoice_plans(self, rng: random.Random) -> list[InvoicePlan]:
        plans = []
        outcomes, weights = list(OUTCOMES), list(OUTCOMES.values())
        for number in range(1, INVOICE_COUNT + 1):
            spec = ENTITIES[number % len(ENTITIES)]
            active = spec.customer_names[:-ARCHIVED_PER_ENTITY]
            lines = []
            for _ in range(rng.randint(1, 5)):
                code, name, *_rest = PRODUCTS[rng.randrange(len(PRODUCTS))]
                quantity = Decimal(rng.choice(["1", "2", "3", "5", "10", "12", "0.5"]))
                if code == "GREEN-SAMPLE-G":
                    quantity = Decimal(rng.choice(["250", "500", "1000"]))
                discount = Decimal(rng.choice(["0", "0", "0", "5", "10", "12.5"]))
                lines.append(LinePlan(code, "", quantity, discount, None))
            if rng.random() < 0.25:
                lines.append(
                    LinePlan(None, "Courier delivery", Decimal("1"), Decimal("0"), Decimal("12.50"))
                )
            plans.append(
                InvoicePlan(
                    reference=f"DEMO-{number:04d}",
                    entity_code=spec.code,
                    customer_name=rng.choice(active),
                    days_ago=rng.randrange(DAYS_BACK),
                    line_amount_type=rng.choices(
                        [LineAmountType.EXCLUSIVE, LineAmountType.INCLUSIVE, LineAmountType.NOTAX],
                        weights=[6, 3, 1],
                    )[0],
                    lines=lines,
                    outcome=rng.choices(outcomes, weights=weights)[0],
                    payment_fraction=Decimal(rng.choice(["0.25", "0.4", "0.5", "0.6", "0.75"])),
                    payment_days=rng.randint(0, DAYS_BACK),
                    payment_method=rng.choice(PaymentMethod.values),
                    second_payment=rng.random() < 0.3,
                )
            )
        return plans

    def _invoices(
        self, entities: dict[str, Entity], plans: list[InvoicePlan], summary: Summary
    ) -> None:
        existing = set(
            Invoice.objects.filter(reference__startswith="DEMO-").values_list(
                "entity__code", "reference"
            )
        )
        lookups = _Lookups(entities)
        for plan in plans:
            if (plan.entity_code, plan.reference) in existing:
                continue
            entity = entities[plan.entity_code]
            today = clock.today_in(entity.timezone)
            issue_date = today - timedelta(days=plan.days_ago)
            # One demo invoice is all or nothing, so an interrupted run can simply be re-run.
            with transaction.atomic():
                invoice = services.invoice_create(
                    entity=entity,
                    customer=lookups.customer(plan.entity_code, plan.customer_name),
                    issue_date=issue_date,
                    line_amount_type=plan.line_amount_type,
                    reference=plan.reference,
                    lines=[lookups.line_input(plan.entity_code, line) for line in plan.lines],
                )
                summary.add("invoices")
                if plan.outcome == "void_draft":
                    services.invoice_void(invoice=invoice)
                if plan.outcome in ("unpaid", "part_paid", "paid", "void"):
                    invoice = services.invoice_release(invoice=invoice)
                if plan.outcome == "void":
                    services.invoice_void(invoice=invoice)
                if plan.outcome in ("part_paid", "paid"):
                    self._payments(invoice, plan, issue_date, today, summary)

    def _payments(
        self, invoice: Invoice, plan: InvoicePlan, issue_date: date, today: date, summary: Summary
    ) -> None:
        paid_on = min(issue_date + timedelta(days=plan.payment_days), today)
        first = (invoice.total * plan.payment_fraction).quantize(CENT)
        if plan.outcome == "paid" and not plan.second_payment:
            first = invoice.amount_due
        if first > 0:
            services.payment_record(
                invoice=invoice,
                amount=first,
                date=paid_on,
                reference=f"{plan.reference}-P1",
                method=plan.payment_method,
            )
            summary.add("payments")
        invoice.refresh_from_db()
        if plan.outcome == "paid" and invoice.amount_due > 0:
            services.payment_record(
                invoice=invoice,
                amount=invoice.amount_due,
                date=today,
                reference=f"{plan.reference}-P2",
                method=plan.payment_method,
            )
            summary.add("payments")

    # --- Credit notes -----------------------------------------------------------------------------

    def _credit_note_plans(
        self, rng: random.Random, invoice_plans: list[InvoicePlan]
    ) -> list[CreditNotePlan]:
        unpaid = [
            plan
            for plan in invoice_plans
            if plan.outcome == "unpaid" and any(line.product_code for line in plan.lines)
        ]
        plans = []
        for number, invoice_plan in enumerate(unpaid[:8], start=1):
            line = next(line for line in invoice_plan.lines if line.product_code)
            assert line.product_code is not None
            plans.append(
                CreditNotePlan(
                    reference=f"DEMO-CN-{number:03d}",
                    invoice_reference=invoice_plan.reference,
                    product_code=line.product_code,
                    quantity=min(line.quantity, Decimal(rng.choice(["1", "2"]))),
                    release=number != 8,  # the last stays a draft
                    allocate=number <= 6,  # the seventh is released but not yet allocated
                )
            )
        return plans

    def _credit_notes(
        self,
        entities: dict[str, Entity],
        invoice_plans: list[InvoicePlan],
        plans: list[CreditNotePlan],
        summary: Summary,
    ) -> None:
        existing = set(
            CreditNote.objects.filter(reference__startswith="DEMO-CN-").values_list(
                "reference", flat=True
            )
        )
        by_reference = {plan.reference: plan for plan in invoice_plans}
        lookups = _Lookups(entities)
        for plan in plans:
            if plan.reference in existing:
                continue
            invoice_plan = by_reference[plan.invoice_reference]
            entity = entities[invoice_plan.entity_code]
            invoice = Invoice.objects.get(entity=entity, reference=plan.invoice_reference)
            today = clock.today_in(entity.timezone)
            issue_date = min(invoice.issue_date + timedelta(days=2), today)
            with transaction.atomic():
                note = services.credit_note_create(
                    entity=entity,
                    customer=invoice.customer,
                    issue_date=issue_date,
                    line_amount_type=invoice.line_amount_type,
                    reference=plan.reference,
                    lines=[
                        LineInput(
                            description=f"Returned: damaged in transit ({invoice.number})",
                            quantity=plan.quantity,
                            product_id=lookups.product_id(
                                invoice_plan.entity_code, plan.product_code
                            ),
                        )
                    ],
                )
                summary.add("credit notes")
                if plan.release:
                    note = services.credit_note_release(credit_note=note)
                if plan.allocate and invoice.status == DocumentStatus.RELEASED:
                    amount = min(note.remaining_credit, invoice.amount_due)
                    if amount > 0:
                        services.credit_note_allocate(
                            credit_note=note, invoice=invoice, amount=amount, date=issue_date
                        )
                        summary.add("credit allocations")

    # --- Users ------------------------------------------------------------------------------------

    def _users(self, summary: Summary) -> None:
        # Well-known demo passwords, on purpose: this command is for local demo databases only.
        user_model = get_user_model()
        if not user_model._default_manager.filter(username="admin").exists():
            user_model._default_manager.create_superuser(
                username="admin",
                email="admin@example.com",
                password="admin",  # noqa: S106
            )
            summary.add("users")
        if not user_model._default_manager.filter(username="clerk").exists():
            user_model._default_manager.create_user(
                username="clerk",
                email="clerk@example.com",
                password="clerk",  # noqa: S106
                is_staff=True,
            )
            summary.add("users")


class _Lookups:
    """Customer and product ids by natural key, loaded once per entity."""

    def __init__(self, entities: dict[str, Entity]) -> None:
        self._customers = {
            (code, customer.name): customer
            for code, entity in entities.items()
            for customer in entity.customers.all()
        }
        self._products = {
            (code, product.code): product.pk
            for code, entity in entities.items()
            for product in entity.products.all()
        }
        self._accounts = {
            code: entity.accounts.get(code="260").pk for code, entity in entities.items()
        }
        self._tax_rates = {
            spec.code: entities[spec.code].tax_rates.get(name=spec.default_tax).pk
            for spec in ENTITIES
        }

    def customer(self, entity_code: str, name: str) -> Customer:
        return self._customers[(entity_code, name)]

    def product_id(self, entity_code: str, code: str) -> int:
        return self._products[(entity_code, code)]

    def line_input(self, entity_code: str, line: LinePlan) -> LineInput:
        if line.product_code is None:
            return LineInput(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                account_id=self._accounts[entity_code],
                tax_rate_id=self._tax_rates[entity_code],
            )
        return LineInput(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            product_id=self.product_id(entity_code, line.product_code),
            discount_rate=line.discount_rate,
        )


def _scaled(amount: Decimal, factor: Decimal) -> Decimal:
    if factor == 1:
        return amount
    places = Decimal("0.0001") if amount < 1 else CENT
    return (amount * factor).quantize(places)
