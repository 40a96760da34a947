"""Billing services: every change to customers, invoices, credit notes and payments goes here.

Each service validates first and raises django.core.exceptions.ValidationError keyed by the
form field it concerns, so a page can show the message next to the field; nothing is written
when it raises (every service runs in one transaction).
"""

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Sum

from billing import money
from billing.models import (
    Account,
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Customer,
    DocumentStatus,
    Entity,
    Invoice,
    InvoiceLine,
    LineAmountType,
    Payment,
    PaymentMethod,
    PaymentSource,
    PaymentStatus,
    PaymentTermType,
    Product,
    TaxRate,
)
from bms import clock
from xero_integration import hooks as xero_hooks

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_UNIT_DECIMALS = 4  # Xero accepts unit prices to 4 decimals with unitdp=4 (notes §8).


@dataclass(frozen=True)
class LineInput:
    description: str = ""
    quantity: Decimal = Decimal("1")
    unit_price: Decimal | None = None
    account_id: int | None = None
    tax_rate_id: int | None = None
    product_id: int | None = None
    discount_rate: Decimal = Decimal("0")


@dataclass
class _ResolvedLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount_rate: Decimal
    account: Account | None
    tax_rate: TaxRate | None
    product: Product | None
    figures: money.LineFigures = field(init=False)


# --- Payment terms --------------------------------------------------------------------------


def _end_of_month(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _day_of_month(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def due_date_from_terms(*, issue_date: date, terms_type: str, terms_day: int) -> date:
    """The due date Xero's contact payment terms give (help.xero.com PaymentTerms)."""
    if terms_type == PaymentTermType.DAYSAFTERBILLDATE:
        return issue_date + timedelta(days=terms_day)
    if terms_type == PaymentTermType.DAYSAFTERBILLMONTH:
        return _end_of_month(issue_date) + timedelta(days=terms_day)
    if terms_type == PaymentTermType.OFCURRENTMONTH:
        due = _day_of_month(issue_date.year, issue_date.month, terms_day)
        # A day already past in the issue month cannot be due before the invoice exists.
        return max(due, issue_date)
    if terms_type == PaymentTermType.OFFOLLOWINGMONTH:
        year, month = (
            (issue_date.year + 1, 1)
            if issue_date.month == 12
            else (
                issue_date.year,
                issue_date.month + 1,
            )
        )
        return _day_of_month(year, month, terms_day)
    raise ValidationError({"payment_terms_type": f"Unknown payment terms type '{terms_type}'."})


# --- Customers --------------------------------------------------------------------------------

CUSTOMER_FIELDS = {
    "name", "email", "phone", "tax_number", "account_number", "currency",
    "payment_terms_type", "payment_terms_day",
    "street_line1", "street_line2", "street_city", "street_region", "street_postal_code",
    "street_country", "postal_line1", "postal_line2", "postal_city", "postal_region",
    "postal_postal_code", "postal_country",
}  # fmt: skip


def _customer_validate(customer: Customer) -> None:
    errors: dict[str, list[str]] = {}
    customer.name = (customer.name or "").strip()
    if not customer.name:
        errors.setdefault("name", []).append("A customer needs a name.")
    if not CURRENCY_RE.match(customer.currency or ""):
        errors.setdefault("currency", []).append(
            f"'{customer.currency}' is not a currency code: use three capital letters such as NZD."
        )
    if customer.payment_terms_type in (
        PaymentTermType.OFCURRENTMONTH,
        PaymentTermType.OFFOLLOWINGMONTH,
    ) and not (1 <= customer.payment_terms_day <= 31):
        errors.setdefault("payment_terms_day", []).append(
            "With terms of the current or following month, the day must be between 1 and 31."
        )
    try:
        customer.full_clean(exclude=["entity", "created_at", "updated_at"])
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
    if errors:
        raise ValidationError(errors)


def customer_create(*, entity: Entity, name: str, **data: Any) -> Customer:
    unknown = set(data) - CUSTOMER_FIELDS
    if unknown:
        raise TypeError(f"customer_create got unknown fields: {sorted(unknown)}")
    now = clock.now()
    customer = Customer(entity=entity, name=name, created_at=now, updated_at=now, **data)
    if not customer.currency:
        customer.currency = entity.base_currency
    _customer_validate(customer)
    customer.save()
    return customer


def customer_update(*, customer: Customer, data: dict[str, Any]) -> Customer:
    """Apply the given field changes; returns the customer. Raises ValidationError."""
    unknown = set(data) - CUSTOMER_FIELDS
    if unknown:
        raise TypeError(f"customer_update got unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        for key, value in data.items():
            setattr(locked, key, value)
        _customer_validate(locked)
        locked.updated_at = clock.now()
        locked.save()
        xero_hooks.customer_changed(customer=locked)
    return locked


def customer_archive(*, customer: Customer, archived: bool = True) -> Customer:
    Customer.objects.filter(pk=customer.pk).update(is_archived=archived, updated_at=clock.now())
    customer.refresh_from_db()
    return customer


def customer_delete(*, customer: Customer) -> None:
    refusal = xero_hooks.customer_delete_refusal(customer=customer)
    if refusal:
        raise ValidationError(refusal)
    if customer.invoices.exists() or customer.credit_notes.exists():
        raise ValidationError(
            f"{customer.name} has invoices or credit notes, so it cannot be deleted; archive it "
            "instead."
        )
    customer.delete()


# --- Lines -------------------------------------------------------------------------------------


def _decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _resolve_lines(
    *,
    entity: Entity,
    lines: Sequence[LineInput],
    line_amount_type: str,
) -> list[_ResolvedLine]:
    errors: list[str] = []
    account_ids = {line.account_id for line in lines if line.account_id}
    tax_ids = {line.tax_rate_id for line in lines if line.tax_rate_id}
    product_ids = {line.product_id for line in lines if line.product_id}
    accounts = Account.objects.select_related("entity").in_bulk(account_ids)
    tax_rates = TaxRate.objects.select_related("entity").in_bulk(tax_ids)
    products = Product.objects.select_related("entity").in_bulk(product_ids)
    resolved: list[_ResolvedLine] = []
    for number, line in enumerate(lines, start=1):
        prefix = f"Line {number}: "
        product = products.get(line.product_id) if line.product_id else None
        if line.product_id and product is None:
            errors.append(f"{prefix}product #{line.product_id} does not exist.")
        elif product is not None and product.entity_id != entity.pk:
            errors.append(
                f"{prefix}product {product.code} belongs to {product.entity.name}, "
                f"not to {entity.name}."
            )
        account = accounts.get(line.account_id) if line.account_id else None
        if account is None and product is not None and not line.account_id:
            account = product.revenue_account
        if line.account_id and account is None:
            errors.append(f"{prefix}account #{line.account_id} does not exist.")
        elif account is not None and account.entity_id != entity.pk:
            errors.append(
                f"{prefix}account {account.code} belongs to {account.entity.name}, "
                f"not to {entity.name}."
            )
        elif account is not None and not account.is_active:
            errors.append(f"{prefix}account {account.code} {account.name} is inactive.")
        tax_rate = tax_rates.get(line.tax_rate_id) if line.tax_rate_id else None
        if tax_rate is None and product is not None and not line.tax_rate_id:
            tax_rate = product.tax_rate
        if line.tax_rate_id and tax_rate is None:
            errors.append(f"{prefix}tax rate #{line.tax_rate_id} does not exist.")
        elif tax_rate is not None and tax_rate.entity_id != entity.pk:
            errors.append(
                f"{prefix}tax rate '{tax_rate.name}' belongs to {tax_rate.entity.name}, "
                f"not to {entity.name}."
            )
        elif tax_rate is not None and not tax_rate.is_active:
            errors.append(f"{prefix}tax rate '{tax_rate.name}' is inactive.")
        unit_price = line.unit_price
        if unit_price is None:
            unit_price = product.sale_price if product is not None else None
        if unit_price is None:
            errors.append(f"{prefix}a unit price is needed when the line has no product.")
            unit_price = Decimal("0")
        elif unit_price < 0:
            errors.append(f"{prefix}unit price cannot be negative (got {unit_price}).")
        elif _decimal_places(unit_price) > MAX_UNIT_DECIMALS:
            errors.append(
                f"{prefix}unit price {unit_price} has more than {MAX_UNIT_DECIMALS} decimal places."
            )
        if line.quantity <= 0:
            errors.append(f"{prefix}quantity must be greater than zero (got {line.quantity}).")
        elif _decimal_places(line.quantity) > 4:
            errors.append(f"{prefix}quantity {line.quantity} has more than 4 decimal places.")
        if not (0 <= line.discount_rate <= 100):
            errors.append(
                f"{prefix}discount must be between 0 and 100% (got {line.discount_rate})."
            )
        description = (line.description or "").strip() or (product.name if product else "")
        if not description:
            errors.append(f"{prefix}a description is needed when the line has no product.")
        resolved_line = _ResolvedLine(
            description=description,
            quantity=line.quantity,
            unit_price=unit_price,
            discount_rate=line.discount_rate,
            account=account,
            tax_rate=tax_rate,
            product=product,
        )
        resolved_line.figures = money.line_figures(
            quantity=line.quantity,
            unit_price=unit_price,
            discount_rate=line.discount_rate,
            tax_rate=tax_rate.rate if tax_rate is not None else Decimal("0"),
            line_amount_type=line_amount_type,
        )
        resolved.append(resolved_line)
    if errors:
        raise ValidationError({"lines": errors})
    return resolved


def _validate_header(
    *, entity: Entity, customer: Customer, currency: str, line_amount_type: str
) -> None:
    errors: dict[str, str] = {}
    if customer.entity_id != entity.pk:
        errors["customer"] = (
            f"{customer.name} is a customer of {customer.entity.name}, not of {entity.name}."
        )
    if not CURRENCY_RE.match(currency):
        errors["currency"] = f"'{currency}' is not a currency code: use three capital letters."
    if line_amount_type not in LineAmountType.values:
        errors["line_amount_type"] = (
            f"'{line_amount_type}' is not a line amount type; use "
            f"{', '.join(LineAmountType.values)}."
        )
    if errors:
        raise ValidationError(errors)


# --- Invoices ------------------------------------------------------------------------------------


def _line_values(line: _ResolvedLine, position: int) -> dict[str, Any]:
    """The stored fields of an invoice or credit note line."""
    return {
        "position": position,
        "product": line.product,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "discount_rate": line.discount_rate,
        "account": line.account,
        "tax_rate": line.tax_rate,
        "line_amount": line.figures.line_amount,
        "tax_amount": line.figures.tax_amount,
    }


def _invoice_write_lines(*, invoice: Invoice, lines: list[_ResolvedLine]) -> None:
    invoice.lines.all().delete()
    is_released = invoice.status == DocumentStatus.RELEASED
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            unit_cost=line.product.unit_cost if is_released and line.product else None,
            **_line_values(line, position),
        )
        for position, line in enumerate(lines, start=1)
    )
    totals = money.document_totals(
        lines=[line.figures for line in lines], line_amount_type=invoice.line_amount_type
    )
    invoice.subtotal, invoice.total_tax, invoice.total = (
        totals.subtotal,
        totals.total_tax,
        totals.total,
    )
    invoice.amount_due = invoice.total - invoice.amount_paid - invoice.amount_credited


def _next_number(*, entity: Entity, kind: str) -> str:
    locked = Entity.objects.select_for_update().get(pk=entity.pk)
    if kind == "invoice":
        number = locked.next_invoice_number
        Entity.objects.filter(pk=entity.pk).update(next_invoice_number=F("next_invoice_number") + 1)
        return f"{locked.invoice_prefix}{number:05d}"
    number = locked.next_credit_note_number
    Entity.objects.filter(pk=entity.pk).update(
        next_credit_note_number=F("next_credit_note_number") + 1
    )
    return f"{locked.credit_note_prefix}{number:05d}"


def _validate_dates(*, issue_date: date, due_date: date) -> None:
    if due_date < issue_date:
        raise ValidationError(
            {"due_date": f"The due date {due_date} is before the issue date {issue_date}."}
        )


def invoice_create(
    *,
    entity: Entity,
    customer: Customer,
    issue_date: date,
    lines: Sequence[LineInput],
    due_date: date | None = None,
    currency: str | None = None,
    line_amount_type: str = LineAmountType.EXCLUSIVE,
    reference: str = "",
    user: AbstractBaseUser | None = None,
) -> Invoice:
    currency = currency or customer.currency
    _validate_header(
        entity=entity, customer=customer, currency=currency, line_amount_type=line_amount_type
    )
    if customer.is_archived:
        raise ValidationError({"customer": f"{customer.name} is archived; unarchive it first."})
    due = due_date or due_date_from_terms(
        issue_date=issue_date,
        terms_type=customer.payment_terms_type,
        terms_day=customer.payment_terms_day,
    )
    _validate_dates(issue_date=issue_date, due_date=due)
    resolved = _resolve_lines(entity=entity, lines=lines, line_amount_type=line_amount_type)
    now = clock.now()
    with transaction.atomic():
        invoice = Invoice(
            entity=entity,
            customer=customer,
            number=_next_number(entity=entity, kind="invoice"),
            issue_date=issue_date,
            due_date=due,
            currency=currency,
            line_amount_type=line_amount_type,
            reference=reference,
            created_at=now,
            updated_at=now,
            created_by_id=user.pk if user is not None else None,
        )
        invoice.full_clean(exclude=["entity", "customer", "created_by", "lines"])
        invoice.save()
        _invoice_write_lines(invoice=invoice, lines=resolved)
        invoice.save()
    return invoice


INVOICE_HEADER_FIELDS = {
    "customer",
    "issue_date",
    "due_date",
    "currency",
    "line_amount_type",
    "reference",
}


def invoice_update(
    *, invoice: Invoice, data: dict[str, Any], lines: Sequence[LineInput] | None = None
) -> Invoice:
    """Correct an invoice. A released invoice can still be corrected (the sync re-pushes it),
    but not moved to another customer or currency, and never below what has been paid."""
    unknown = set(data) - INVOICE_HEADER_FIELDS
    if unknown:
        raise TypeError(f"invoice_update got unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        locked = (
            Invoice.objects.select_for_update()
            .select_related("entity", "customer")
            .get(pk=invoice.pk)
        )
        if locked.status == DocumentStatus.VOID:
            raise ValidationError(f"Invoice {locked.number} is void and cannot be edited.")
        if locked.status == DocumentStatus.RELEASED:
            refusal = xero_hooks.invoice_edit_refusal(invoice=locked)
            if refusal:
                raise ValidationError(refusal)
            if "customer" in data and data["customer"].pk != locked.customer_id:
                raise ValidationError(
                    {
                        "customer": (
                            f"Invoice {locked.number} is released, so its customer cannot be "
                            "changed: void it and raise a new invoice for the other customer."
                        )
                    }
                )
            if "currency" in data and data["currency"] != locked.currency:
                raise ValidationError(
                    {
                        "currency": (
                            f"Invoice {locked.number} is released, so its currency cannot be "
                            "changed: void it and raise a new invoice in the other currency."
                        )
                    }
                )
        for key, value in data.items():
            setattr(locked, key, value)
        _validate_header(
            entity=locked.entity,
            customer=locked.customer,
            currency=locked.currency,
            line_amount_type=locked.line_amount_type,
        )
        _validate_dates(issue_date=locked.issue_date, due_date=locked.due_date)
        if lines is not None or "line_amount_type" in data:
            new_lines = lines if lines is not None else _existing_line_inputs(locked)
            if locked.status == DocumentStatus.RELEASED and not new_lines:
                raise ValidationError({"lines": ["A released invoice needs at least one line."]})
            resolved = _resolve_lines(
                entity=locked.entity, lines=new_lines, line_amount_type=locked.line_amount_type
            )
            if locked.status == DocumentStatus.RELEASED:
                _require_complete_lines(resolved)
            _invoice_write_lines(invoice=locked, lines=resolved)
            if locked.amount_due < 0:
                raise ValidationError(
                    {
                        "lines": [
                            f"The new total {locked.total} is less than the "
                            f"{locked.amount_paid + locked.amount_credited} already paid or "
                            "credited on this invoice."
                        ]
                    }
                )
        locked.version = F("version") + 1
        locked.updated_at = clock.now()
        locked.save()
        locked.refresh_from_db()
        if locked.status == DocumentStatus.RELEASED:
            xero_hooks.invoice_changed(invoice=locked)
    return locked


def _existing_line_inputs(invoice: Invoice) -> list[LineInput]:
    return [
        LineInput(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            account_id=line.account_id,
            tax_rate_id=line.tax_rate_id,
            product_id=line.product_id,
            discount_rate=line.discount_rate,
        )
        for line in invoice.lines.all()
    ]


def _require_complete_lines(lines: Sequence[_ResolvedLine]) -> None:
    errors = []
    for number, line in enumerate(lines, start=1):
        if line.account is None:
            errors.append(f"Line {number}: choose an account before releasing.")
        if line.tax_rate is None:
            errors.append(f"Line {number}: choose a tax rate before releasing.")
    if errors:
        raise ValidationError({"lines": errors})


def invoice_release(*, invoice: Invoice, user: AbstractBaseUser | None = None) -> Invoice:
    with transaction.atomic():
        locked = (
            Invoice.objects.select_for_update()
            .select_related("entity", "customer")
            .get(pk=invoice.pk)
        )
        if locked.status != DocumentStatus.DRAFT:
            raise ValidationError(
                f"Invoice {locked.number} is already {locked.get_status_display().lower()}."
            )
        if locked.customer.is_archived:
            raise ValidationError(
                {"customer": f"{locked.customer.name} is archived; unarchive it before releasing."}
            )
        line_inputs = _existing_line_inputs(locked)
        if not line_inputs:
            raise ValidationError({"lines": ["Add at least one line before releasing."]})
        resolved = _resolve_lines(
            entity=locked.entity, lines=line_inputs, line_amount_type=locked.line_amount_type
        )
        _require_complete_lines(resolved)
        now = clock.now()
        locked.status = DocumentStatus.RELEASED
        locked.released_at = now
        # Recompute so the stored totals always match the lines exactly as released.
        _invoice_write_lines(invoice=locked, lines=resolved)
        locked.version = F("version") + 1
        locked.updated_at = now
        locked.save()
        locked.refresh_from_db()
        xero_hooks.invoice_released(invoice=locked, user=user)
    return locked


def invoice_void(*, invoice: Invoice, user: AbstractBaseUser | None = None) -> Invoice:
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status == DocumentStatus.VOID:
            raise ValidationError(f"Invoice {locked.number} is already void.")
        if locked.amount_paid > 0 or locked.amount_credited > 0:
            raise ValidationError(
                f"Invoice {locked.number} has {locked.amount_paid + locked.amount_credited} paid "
                "or "
                "credited against it; remove the payments and credits before voiding it."
            )
        now = clock.now()
        if locked.released_at is None:
            locked.released_at = now
        locked.status = DocumentStatus.VOID
        locked.voided_at = now
        locked.version = F("version") + 1
        locked.updated_at = now
        locked.save()
        locked.refresh_from_db()
        xero_hooks.invoice_changed(invoice=locked, user=user)
    return locked


def invoice_amounts_recalculate(*, invoice: Invoice) -> Invoice:
    """Derive paid/credited/due and payment status from payments and allocations (never +=)."""
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        paid = locked.payments.filter(is_deleted=False).aggregate(s=Sum("amount"))["s"]
        credited = locked.credit_allocations.aggregate(s=Sum("amount"))["s"]
        locked.amount_paid = paid or money.ZERO
        locked.amount_credited = credited or money.ZERO
        locked.amount_due = locked.total - locked.amount_paid - locked.amount_credited
        settled = locked.amount_paid + locked.amount_credited
        if locked.total > 0 and locked.amount_due <= 0:
            locked.payment_status = PaymentStatus.PAID
        elif settled > 0:
            locked.payment_status = PaymentStatus.PART_PAID
        else:
            locked.payment_status = PaymentStatus.UNPAID
        locked.updated_at = clock.now()
        locked.save()
    return locked


def payment_record(
    *,
    invoice: Invoice,
    amount: Decimal,
    date: date,
    reference: str = "",
    method: str = PaymentMethod.BANK_TRANSFER,
) -> Payment:
    """Record a payment received outside Xero (a cheque, a transfer) against a released invoice."""
    errors: dict[str, str] = {}
    if amount <= 0:
        errors["amount"] = f"A payment must be more than zero (got {amount})."
    elif _decimal_places(amount) > 2:
        errors["amount"] = f"A payment is in cents: {amount} has more than 2 decimal places."
    if method not in PaymentMethod.values:
        errors["method"] = f"'{method}' is not a payment method."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status != DocumentStatus.RELEASED:
            raise ValidationError(
                f"Invoice {locked.number} is {locked.get_status_display().lower()}; only a "
                "released invoice can be paid."
            )
        if amount > locked.amount_due:
            raise ValidationError(
                {"amount": f"{amount} is more than the {locked.amount_due} due on {locked.number}."}
            )
        now = clock.now()
        payment = Payment.objects.create(
            invoice=locked,
            amount=amount,
            date=date,
            reference=reference,
            method=method,
            source=PaymentSource.BMS,
            created_at=now,
            updated_at=now,
        )
        invoice_amounts_recalculate(invoice=locked)
        xero_hooks.payment_recorded(payment=payment)
    return payment


# --- Credit notes -------------------------------------------------------------------------------


def credit_note_create(
    *,
    entity: Entity,
    customer: Customer,
    issue_date: date,
    lines: Sequence[LineInput],
    currency: str | None = None,
    line_amount_type: str = LineAmountType.EXCLUSIVE,
    reference: str = "",
) -> CreditNote:
    currency = currency or customer.currency
    _validate_header(
        entity=entity, customer=customer, currency=currency, line_amount_type=line_amount_type
    )
    resolved = _resolve_lines(entity=entity, lines=lines, line_amount_type=line_amount_type)
    now = clock.now()
    with transaction.atomic():
        note = CreditNote.objects.create(
            entity=entity,
            customer=customer,
            number=_next_number(entity=entity, kind="credit_note"),
            issue_date=issue_date,
            currency=currency,
            line_amount_type=line_amount_type,
            reference=reference,
            created_at=now,
            updated_at=now,
        )
        _credit_note_write_lines(note=note, lines=resolved)
        note.save()
    return note


def _credit_note_write_lines(*, note: CreditNote, lines: list[_ResolvedLine]) -> None:
    note.lines.all().delete()
    CreditNoteLine.objects.bulk_create(
        CreditNoteLine(credit_note=note, **_line_values(line, position))
        for position, line in enumerate(lines, start=1)
    )
    totals = money.document_totals(
        lines=[line.figures for line in lines], line_amount_type=note.line_amount_type
    )
    note.subtotal, note.total_tax, note.total = totals.subtotal, totals.total_tax, totals.total
    note.remaining_credit = note.total - note.amount_allocated


def credit_note_release(*, credit_note: CreditNote) -> CreditNote:
    with transaction.atomic():
        locked = (
            CreditNote.objects.select_for_update().select_related("entity").get(pk=credit_note.pk)
        )
        if locked.status != DocumentStatus.DRAFT:
            raise ValidationError(f"Credit note {locked.number} is already released or void.")
        lines = list(locked.lines.select_related("product"))
        if not lines:
            raise ValidationError({"lines": ["Add at least one line before releasing."]})
        missing = [
            f"Line {line.position}: choose an account and a tax rate before releasing."
            for line in lines
            if line.account_id is None or line.tax_rate_id is None
        ]
        if missing:
            raise ValidationError({"lines": missing})
        for line in lines:
            if line.product is not None:
                line.unit_cost = line.product.unit_cost
        CreditNoteLine.objects.bulk_update(lines, ["unit_cost"])
        now = clock.now()
        locked.status = DocumentStatus.RELEASED
        locked.released_at = now
        locked.version = F("version") + 1
        locked.updated_at = now
        locked.save()
        locked.refresh_from_db()
        xero_hooks.credit_note_released(credit_note=locked)
    return locked


def credit_note_allocate(
    *, credit_note: CreditNote, invoice: Invoice, amount: Decimal, date: date
) -> CreditNoteAllocation:
    with transaction.atomic():
        note = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
        target = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if note.status != DocumentStatus.RELEASED:
            raise ValidationError(f"Credit note {note.number} must be released before allocating.")
        if target.status != DocumentStatus.RELEASED:
            raise ValidationError({"invoice": f"Invoice {target.number} is not released."})
        if target.customer_id != note.customer_id or target.currency != note.currency:
            raise ValidationError(
                {"invoice": f"Invoice {target.number} is for another customer or currency."}
            )
        if amount <= 0:
            raise ValidationError({"amount": "An allocation must be more than zero."})
        if amount > note.remaining_credit:
            raise ValidationError(
                {"amount": f"Only {note.remaining_credit} of {note.number} is left to allocate."}
            )
        if amount > target.amount_due:
            raise ValidationError(
                {"amount": f"{amount} is more than the {target.amount_due} due on {target.number}."}
            )
        allocation = CreditNoteAllocation.objects.create(
            credit_note=note, invoice=target, amount=amount, date=date, created_at=clock.now()
        )
        note.amount_allocated += amount
        note.remaining_credit = note.total - note.amount_allocated
        note.version = F("version") + 1
        note.save()
        invoice_amounts_recalculate(invoice=target)
        xero_hooks.credit_note_allocated(credit_note=note)
    return allocation
