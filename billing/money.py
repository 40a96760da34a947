"""Invoice arithmetic, done the way Xero does it (xero-api-notes.md §8, ROUND).

Xero computes each line's amount and tax, rounds each to 2 decimals, then sums the rounded
values. The rounding mode at the midpoint is not confirmed by a primary source; BMS uses
ROUND_HALF_UP (commercial rounding), and the sandbox uses the same rule.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")
ZERO = Decimal("0.00")


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(*, quantity: Decimal, unit_price: Decimal, discount_rate: Decimal) -> Decimal:
    """Qty × Unit × (100 − DiscountRate) / 100, rounded to the cent (Xero's LineAmount)."""
    return round_money(quantity * unit_price * (HUNDRED - discount_rate) / HUNDRED)


def line_tax(*, amount: Decimal, rate: Decimal, line_amount_type: str) -> Decimal:
    if line_amount_type == "NoTax" or rate == 0:
        return ZERO
    if line_amount_type == "Inclusive":
        return round_money(amount * rate / (HUNDRED + rate))
    return round_money(amount * rate / HUNDRED)


@dataclass(frozen=True)
class LineFigures:
    line_amount: Decimal
    tax_amount: Decimal


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    total_tax: Decimal
    total: Decimal


def line_figures(
    *,
    quantity: Decimal,
    unit_price: Decimal,
    discount_rate: Decimal,
    tax_rate: Decimal,
    line_amount_type: str,
) -> LineFigures:
    amount = line_amount(quantity=quantity, unit_price=unit_price, discount_rate=discount_rate)
    tax = line_tax(amount=amount, rate=tax_rate, line_amount_type=line_amount_type)
    return LineFigures(line_amount=amount, tax_amount=tax)


def document_totals(*, lines: Iterable[LineFigures], line_amount_type: str) -> Totals:
    lines = list(lines)
    amounts = sum((line.line_amount for line in lines), ZERO)
    tax = sum((line.tax_amount for line in lines), ZERO)
    if line_amount_type == "Inclusive":
        # Inclusive line amounts already contain the tax.
        return Totals(subtotal=amounts - tax, total_tax=tax, total=amounts)
    return Totals(subtotal=amounts, total_tax=tax, total=amounts + tax)
