"""The billing domain. Money is Decimal; invariants are database constraints.

Totals are stored (list pages sort and filter by them) but only ever written by the services in
billing/services.py, which recompute them from the lines in the same transaction.
"""

from datetime import time
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

ZERO = Decimal("0.00")
# SQLite evaluates CHECK arithmetic on decimals in floating point (56.35 − 50 ≠ 6.35 exactly),
# so sums are checked to within a tenth of a cent; PostgreSQL's numeric is exact either way.
_TOLERANCE = Decimal("0.001")


def _equals_sum(field: str, expression: models.Expression | F) -> Q:
    return Q(**{f"{field}__gte": expression - _TOLERANCE}) & Q(
        **{f"{field}__lte": expression + _TOLERANCE}
    )


class EntityKind(models.TextChoices):
    ORGANISATION = "organisation", "Organisation"
    BRANCH = "branch", "Branch"


class InvoicePushStatus(models.TextChoices):
    AUTHORISED = "AUTHORISED", "Approved (AUTHORISED)"
    DRAFT = "DRAFT", "Draft"


class Entity(models.Model):
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=20, unique=True)
    kind = models.CharField(
        max_length=20, choices=EntityKind.choices, default=EntityKind.ORGANISATION
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="branches"
    )
    base_currency = models.CharField(max_length=3)
    timezone = models.CharField(max_length=64, default="UTC")
    business_hours_start = models.TimeField(default=time(8, 0))
    business_hours_end = models.TimeField(default=time(18, 0))
    # ISO weekday numbers (1 = Monday … 7 = Sunday) on which the entity does business.
    business_days = models.CharField(max_length=7, default="12345")
    invoice_prefix = models.CharField(max_length=10, unique=True)
    credit_note_prefix = models.CharField(max_length=10, unique=True)
    next_invoice_number = models.PositiveIntegerField(default=1)
    next_credit_note_number = models.PositiveIntegerField(default=1)
    # Sync settings used by the Xero integration.
    invoice_push_status = models.CharField(
        max_length=20, choices=InvoicePushStatus.choices, default=InvoicePushStatus.AUTHORISED
    )
    sync_item_descriptions = models.BooleanField(default=True)
    lock_invoices_when_transferred = models.BooleanField(default=True)
    journal_hour = models.PositiveSmallIntegerField(default=1, validators=[MaxValueValidator(23)])

    class Meta:
        verbose_name_plural = "entities"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(business_hours_start__lt=F("business_hours_end")),
                name="entity_business_hours_order",
            ),
            models.CheckConstraint(condition=Q(journal_hour__lte=23), name="entity_journal_hour"),
            models.CheckConstraint(
                condition=~Q(kind=EntityKind.BRANCH) | Q(parent__isnull=False),
                name="entity_branch_has_parent",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AccountType(models.TextChoices):
    REVENUE = "REVENUE", "Revenue"
    SALES = "SALES", "Sales"
    OTHERINCOME = "OTHERINCOME", "Other income"
    DIRECTCOSTS = "DIRECTCOSTS", "Direct costs"
    EXPENSE = "EXPENSE", "Expense"
    OVERHEADS = "OVERHEADS", "Overheads"
    CURRENT = "CURRENT", "Current asset"
    INVENTORY = "INVENTORY", "Inventory"
    FIXED = "FIXED", "Fixed asset"
    NONCURRENT = "NONCURRENT", "Non-current asset"
    PREPAYMENT = "PREPAYMENT", "Prepayment"
    BANK = "BANK", "Bank"
    CURRLIAB = "CURRLIAB", "Current liability"
    LIABILITY = "LIABILITY", "Liability"
    TERMLIAB = "TERMLIAB", "Non-current liability"
    EQUITY = "EQUITY", "Equity"
    DEPRECIATN = "DEPRECIATN", "Depreciation"


REVENUE_ACCOUNT_TYPES = (AccountType.REVENUE, AccountType.SALES, AccountType.OTHERINCOME)


class Account(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="accounts")
    code = models.CharField(max_length=10)
    name = models.CharField(max_length=150)
    type = models.CharField(max_length=20, choices=AccountType.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["entity", "code"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "code"], name="account_code_per_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class TaxRate(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="tax_rates")
    name = models.CharField(max_length=100)
    rate = models.DecimalField(max_digits=7, decimal_places=4)  # percent, e.g. 15.0000
    xero_tax_type = models.CharField(max_length=50, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["entity", "name"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "name"], name="tax_rate_name_per_entity"),
            models.CheckConstraint(
                condition=Q(rate__gte=0) & Q(rate__lte=100), name="tax_rate_percent_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.rate.normalize()}%)"


class PaymentTermType(models.TextChoices):
    # Xero's four PaymentTermType values (xero-api-notes.md §7).
    DAYSAFTERBILLDATE = "DAYSAFTERBILLDATE", "day(s) after the invoice date"
    DAYSAFTERBILLMONTH = "DAYSAFTERBILLMONTH", "day(s) after the end of the invoice month"
    OFCURRENTMONTH = "OFCURRENTMONTH", "of the current month"
    OFFOLLOWINGMONTH = "OFFOLLOWINGMONTH", "of the following month"


class Customer(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="customers")
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=255, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    street_line1 = models.CharField(max_length=500, blank=True)
    street_line2 = models.CharField(max_length=500, blank=True)
    street_city = models.CharField(max_length=255, blank=True)
    street_region = models.CharField(max_length=255, blank=True)
    street_postal_code = models.CharField(max_length=50, blank=True)
    street_country = models.CharField(max_length=50, blank=True)
    postal_line1 = models.CharField(max_length=500, blank=True)
    postal_line2 = models.CharField(max_length=500, blank=True)
    postal_city = models.CharField(max_length=255, blank=True)
    postal_region = models.CharField(max_length=255, blank=True)
    postal_postal_code = models.CharField(max_length=50, blank=True)
    postal_country = models.CharField(max_length=50, blank=True)
    tax_number = models.CharField(max_length=50, blank=True)
    account_number = models.CharField(max_length=50, blank=True)
    currency = models.CharField(max_length=3)
    payment_terms_type = models.CharField(
        max_length=20, choices=PaymentTermType.choices, default=PaymentTermType.DAYSAFTERBILLDATE
    )
    payment_terms_day = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(0), MaxValueValidator(31)]
    )
    is_archived = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["entity", "name"], name="customer_entity_name"),
            models.Index(fields=["name", "id"], name="customer_name_id"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(payment_terms_day__lte=31), name="customer_terms_day_max"
            ),
            # Xero: "Due Date for Sales Invoices must be between 1 and 31 when set to the
            # following (or current) month" (xero-api-notes.md §7).
            models.CheckConstraint(
                condition=Q(
                    payment_terms_type__in=[
                        PaymentTermType.DAYSAFTERBILLDATE,
                        PaymentTermType.DAYSAFTERBILLMONTH,
                    ]
                )
                | Q(payment_terms_day__gte=1),
                name="customer_terms_day_of_month",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="customer_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("billing:customer_detail", args=[self.pk])


class Product(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="products")
    code = models.CharField(max_length=30)
    name = models.CharField(max_length=255)
    sale_price = models.DecimalField(max_digits=16, decimal_places=4)
    unit_cost = models.DecimalField(max_digits=16, decimal_places=4)
    revenue_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    cost_of_sales_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    inventory_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tax_rate = models.ForeignKey(
        TaxRate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["entity", "code"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "code"], name="product_code_per_entity"),
            models.CheckConstraint(condition=Q(sale_price__gte=0), name="product_price_positive"),
            models.CheckConstraint(condition=Q(unit_cost__gte=0), name="product_cost_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class LineAmountType(models.TextChoices):
    # Spelled as Xero spells LineAmountTypes (xero-api-notes.md §8).
    EXCLUSIVE = "Exclusive", "Tax exclusive"
    INCLUSIVE = "Inclusive", "Tax inclusive"
    NOTAX = "NoTax", "No tax"


class DocumentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RELEASED = "released", "Released"
    VOID = "void", "Void"


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid", "Unpaid"
    PART_PAID = "part_paid", "Part paid"
    PAID = "paid", "Paid"


class Invoice(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    # Unique across all entities: entities that share one Xero organisation share Xero's
    # unique ACCREC number space, so each entity numbers with its own prefix.
    number = models.CharField(max_length=255, unique=True)
    status = models.CharField(
        max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.DRAFT
    )
    payment_status = models.CharField(
        max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID
    )
    issue_date = models.DateField()
    due_date = models.DateField()
    currency = models.CharField(max_length=3)
    line_amount_type = models.CharField(
        max_length=10, choices=LineAmountType.choices, default=LineAmountType.EXCLUSIVE
    )
    reference = models.CharField(max_length=255, blank=True)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    total_tax = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    amount_paid = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    amount_credited = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    amount_due = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    released_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every change that Xero should see, so the sync knows what it last pushed.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-issue_date", "-id"]
        indexes = [
            models.Index(fields=["entity", "status", "issue_date"], name="invoice_entity_status"),
            models.Index(fields=["-issue_date", "-id"], name="invoice_issue_date_id"),
            models.Index(fields=["customer", "-issue_date"], name="invoice_customer_date"),
            models.Index(fields=["entity", "released_at"], name="invoice_entity_released"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_date__gte=F("issue_date")), name="invoice_due_after_issue"
            ),
            models.CheckConstraint(
                condition=_equals_sum("total", F("subtotal") + F("total_tax")),
                name="invoice_total_sum",
            ),
            models.CheckConstraint(
                condition=_equals_sum(
                    "amount_due", F("total") - F("amount_paid") - F("amount_credited")
                ),
                name="invoice_amount_due_sum",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_credited__gte=0),
                name="invoice_paid_credited_positive",
            ),
            models.CheckConstraint(
                condition=Q(status=DocumentStatus.DRAFT) | Q(released_at__isnull=False),
                name="invoice_released_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("billing:invoice_detail", args=[self.pk])


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    description = models.TextField()
    quantity = models.DecimalField(max_digits=16, decimal_places=4)
    unit_price = models.DecimalField(max_digits=16, decimal_places=4)
    discount_rate = models.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tax_rate = models.ForeignKey(
        TaxRate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    line_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    tax_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    # Copied from the product at release so a later cost change never rewrites history.
    unit_cost = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="invoice_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="invoice_line_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(discount_rate__gte=0) & Q(discount_rate__lte=100),
                name="invoice_line_discount_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice.number} line {self.position}"


class CreditNote(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=255, unique=True)
    status = models.CharField(
        max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.DRAFT
    )
    issue_date = models.DateField()
    currency = models.CharField(max_length=3)
    line_amount_type = models.CharField(
        max_length=10, choices=LineAmountType.choices, default=LineAmountType.EXCLUSIVE
    )
    reference = models.CharField(max_length=255, blank=True)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    total_tax = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    total = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    amount_allocated = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    remaining_credit = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    released_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-issue_date", "-id"]
        indexes = [
            models.Index(fields=["entity", "released_at"], name="credit_note_entity_released")
        ]
        constraints = [
            models.CheckConstraint(
                condition=_equals_sum("total", F("subtotal") + F("total_tax")),
                name="credit_note_total_sum",
            ),
            models.CheckConstraint(
                condition=_equals_sum("remaining_credit", F("total") - F("amount_allocated"))
                & Q(remaining_credit__gte=0),
                name="credit_note_remaining",
            ),
            models.CheckConstraint(
                condition=Q(status=DocumentStatus.DRAFT) | Q(released_at__isnull=False),
                name="credit_note_released_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def get_absolute_url(self) -> str:
        return reverse("billing:credit_note_detail", args=[self.pk])


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    description = models.TextField()
    quantity = models.DecimalField(max_digits=16, decimal_places=4)
    unit_price = models.DecimalField(max_digits=16, decimal_places=4)
    discount_rate = models.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tax_rate = models.ForeignKey(
        TaxRate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    line_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    tax_amount = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    unit_cost = models.DecimalField(max_digits=16, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["credit_note", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["credit_note", "position"], name="credit_note_line_position"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="credit_note_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="credit_note_line_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(discount_rate__gte=0) & Q(discount_rate__lte=100),
                name="credit_note_line_discount_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.credit_note.number} line {self.position}"


class CreditNoteAllocation(models.Model):
    credit_note = models.ForeignKey(
        CreditNote, on_delete=models.PROTECT, related_name="allocations"
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="credit_allocations"
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    date = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.credit_note.number} to {self.invoice.number}"


class PaymentSource(models.TextChoices):
    BMS = "bms", "Recorded in BMS"
    XERO = "xero", "Pulled from Xero"


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "transfer", "Bank transfer"
    CHEQUE = "cheque", "Cheque"
    CARD = "card", "Card"
    CASH = "cash", "Cash"


class Payment(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    date = models.DateField()
    reference = models.CharField(max_length=255, blank=True)
    method = models.CharField(
        max_length=20, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER
    )
    source = models.CharField(max_length=10, choices=PaymentSource.choices)
    # A payment deleted in Xero is kept (reversed), never forgotten.
    is_deleted = models.BooleanField(default=False)
    xero_payment_id = models.CharField(max_length=36, null=True, blank=True, unique=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=~Q(source=PaymentSource.XERO) | Q(xero_payment_id__isnull=False),
                name="payment_from_xero_has_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} on {self.invoice.number}"
