"""Xero's accounting rules: messages, rounding, line and tax computation, status machine.

Verbatim messages come from /work/shared/xero-api-notes.md (section in each comment). Messages
marked "not confirmed" are the sandbox's choice where the notes have no primary source; each such
rule takes the stricter reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from .jsonutil import to_decimal

TWO = Decimal("0.01")
FOUR = Decimal("0.0001")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)

# --- verbatim (xero-api-notes.md) ----------------------------------------------------------------
MSG_CONTACT_NAME_TAKEN = (  # §7
    "The contact name {name} is already assigned to another contact. "
    "The contact name must be unique across all active contacts."
)
MSG_CONTACT_NAME_EMPTY = "Contact Name cannot be empty."  # §7 (xeroizer#380)
MSG_EMAIL_INVALID = "Email address must be valid."  # §8 (HRC example)
MSG_INVOICE_NUMBER_TAKEN = "Invoice # must be unique."  # §8
MSG_INVALID_STATUS_MODIFY = "Invoice not of valid status for modification"  # §8
MSG_ALLOCATED_NO_EDIT = (  # §8
    "This document cannot be edited as it has a payment or credit note allocated to it."
)
MSG_ACCOUNT_NOT_VALID = "Account code '{code}' is not a valid code for this document."  # §8
MSG_ACCOUNT_ARCHIVED = (  # §8 (third-party fixture)
    "Account code '{code}' has been archived, or has been deleted. "
    "Each line item must reference a valid account."
)
MSG_TAX_NOT_EXIST = (  # §8
    "The TaxType code {tax} does not exist or cannot be used for this type of transaction."
)
MSG_TAX_WRONG_ACCOUNT = "The TaxType code '{tax}' cannot be used with account code '{code}'."  # §8
MSG_DATE_REQUIRED = "The Date field must be specified."  # §8
MSG_DUE_DATE_REQUIRED = "The document DueDate field must be specified."  # §8
MSG_CURRENCY = "Organisation is not subscribed to currency {code}"  # §8 [S]
MSG_PAYMENT_EXCEEDS = "Payment amount exceeds the amount outstanding on this document"  # §9
MSG_JOURNAL_UNBALANCED = "The total debits ({debit}) must equal total credits ({credit})"  # §10
MSG_JOURNAL_ACCOUNT_REMOVED = (  # §10: a Warning, and the line is dropped
    "Account code ''{code}'' has been removed as it does not match a recognised account."
)
MSG_CN_ALREADY_PAID = "The invoice you are trying to allocate to has already been paid off"  # §11
MSG_CN_TOO_MUCH = (  # §11
    "Credit Note cannot be allocated as amount is greater than amount outstanding"
)
MSG_CN_WRONG_TYPE = (
    "Credit Note cannot be allocated to an incorrect invoice type"  # §11 (truncated in source)
)

# --- not confirmed (sandbox's choice; stricter behaviour) -----------------------------------------
MSG_CONTACT_NUMBER_TAKEN = (  # §7 RN [S]: "PUT errors if Name or ContactNumber matches"
    "The contact number {number} is already assigned to another contact."
)
MSG_CONTACT_ARCHIVED = (  # not confirmed (notes §7): invoicing an archived contact
    "The contact {name} is archived. Archived contacts cannot be used on transactions."
)
# not confirmed (notes §7)
MSG_CONTACT_NOT_FOUND = "The contact with ContactID {id} could not be found."
# not confirmed (notes §7)
MSG_CONTACT_REQUIRED = "A Contact must be specified for this type of transaction"
MSG_ACCOUNT_REQUIRED = "Each line item must reference a valid account."  # not confirmed (notes §8)
MSG_PERIOD_LOCKED = (  # not confirmed: notes §8 RN says only "No edits in a locked period."
    "The document date cannot be on or before the period lock date ({lock})."
)
MSG_TYPE_UNSUPPORTED = (  # the issue allows rejecting ACCPAY; stated plainly
    "The Xero sandbox only models {allowed} documents; {type} is not supported."
)
MSG_TYPE_REQUIRED = "The document Type must be specified."  # not confirmed (notes §8)
# not confirmed (notes §8)
MSG_INVALID_STATUS_CREATE = "{type} cannot be created with status {status}."
MSG_PAYMENT_NOT_AUTHORISED = (
    "Payments can only be made against Authorised documents."  # not confirmed (notes §9)
)
MSG_PAYMENT_ACCOUNT = (  # not confirmed (notes §9)
    "Account code '{code}' cannot be used for payments. "
    "Use a bank account or an account with payments enabled."
)
MSG_PAYMENT_ACCOUNT_MISSING = "Account must be valid."  # §8 (Xero-Java#353), used for payments
MSG_PAYMENT_INVOICE_MISSING = "Invoice could not be found."  # not confirmed (notes §9)
MSG_PAYMENT_AMOUNT = "Payment amount must be greater than zero."  # not confirmed (notes §9)
MSG_PAYMENT_ALREADY_DELETED = "Payment has already been deleted."  # not confirmed (notes §9)
# not confirmed (notes §9)
MSG_PAYMENT_ONLY_DELETE = "Payments can only be updated to a Status of DELETED."
MSG_PAYMENT_TARGET_UNSUPPORTED = "The Xero sandbox only models payments against ACCREC invoices."
MSG_CN_NOT_AUTHORISED = (
    "Credit Note must be Authorised before it can be allocated."  # not confirmed (notes §11)
)
MSG_CN_NUMBER_TAKEN = "Credit Note # must be unique."  # not confirmed (notes §11)
MSG_NO_DISCOUNT_ON_CN = "Discounts are not supported on credit notes."  # spec LineItem text
MSG_CURRENCY_MISMATCH = (
    # not confirmed (notes §9)
    "The currency of the payment must match the currency of the document."
)
MSG_JOURNAL_NARRATION = "The Narration field must be specified."  # spec marks Narration required
# not confirmed (notes §10)
MSG_JOURNAL_TWO_LINES = "A manual journal must have at least two journal lines."
MSG_JOURNAL_BANK = (
    "Account code '{code}' is a bank account and cannot be used on a manual journal."  # RN [S]
)
MSG_JOURNAL_SYSTEM = (
    "Account code '{code}' is a system account and cannot be used on a manual journal."  # RN [S]
)
MSG_JOURNAL_INVENTORY = (  # RN [S]
    "Account code '{code}' is an inventory account and cannot be used on a manual journal."
)
# not confirmed (notes §10)
MSG_JOURNAL_STATUS = "Manual Journal not of valid status for modification"

REVENUE_TYPES = {"REVENUE", "SALES", "OTHERINCOME"}

# xero-api-notes.md §8 (Xero support via xeroizer#48): the only status changes the API allows.
INVOICE_TRANSITIONS = {
    ("DRAFT", "SUBMITTED"),
    ("DRAFT", "AUTHORISED"),
    ("DRAFT", "DELETED"),
    ("SUBMITTED", "DRAFT"),
    ("SUBMITTED", "AUTHORISED"),
    ("SUBMITTED", "DELETED"),
    ("AUTHORISED", "VOIDED"),
}
CREATE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED"}
JOURNAL_TRANSITIONS = {("DRAFT", "POSTED"), ("DRAFT", "DELETED"), ("POSTED", "VOIDED")}


class ValidationFailure(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def r2(value: Decimal) -> Decimal:
    """Xero rounds each line's tax to 2 dp (ROUND). Midpoint mode not confirmed: half-up."""
    return value.quantize(TWO, rounding=ROUND_HALF_UP)


def money(value: Any) -> Decimal:
    parsed = to_decimal(value)
    return r2(parsed if parsed is not None else ZERO)


def account_by_code(
    org: dict[str, Any], code: str | None = None, account_id: str | None = None
) -> dict[str, Any] | None:
    for account in org["accounts"].values():
        if account_id and account["AccountID"].lower() == str(account_id).lower():
            return cast(dict[str, Any], account)
        if code is not None and account.get("Code") == code:
            return cast(dict[str, Any], account)
    return None


def check_period_lock(org: dict[str, Any], when: date | None, errors: list[str]) -> None:
    lock = org.get("period_lock_date")
    if lock and when and when <= lock:
        errors.append(MSG_PERIOD_LOCKED.format(lock=lock.isoformat()))


@dataclass
class LineResult:
    lines: list[dict[str, Any]] = field(default_factory=list)
    sub_total: Decimal = ZERO
    total_tax: Decimal = ZERO
    total: Decimal = ZERO
    total_discount: Decimal = ZERO
    errors: list[str] = field(default_factory=list)


def compute_lines(
    org: dict[str, Any],
    lines_in: list[dict[str, Any]],
    *,
    line_amount_types: str,
    unitdp: int,
    allow_discount: bool,
    allowed_account_types: set[str],
    new_id: Any,
    keep_tax_amounts: bool = True,
) -> LineResult:
    """Per-line amounts and tax, rounded to 2 dp per line and then summed (ROUND, notes §8)."""
    result = LineResult()
    unit_q = FOUR if unitdp == 4 else TWO
    for raw in lines_in:
        line: dict[str, Any] = {"LineItemID": raw.get("LineItemID") or new_id()}
        if raw.get("Description") is not None:
            line["Description"] = raw["Description"]
        qty = to_decimal(raw.get("Quantity"))
        unit = to_decimal(raw.get("UnitAmount"))
        given_amount = to_decimal(raw.get("LineAmount"))
        description_only = qty is None and unit is None and given_amount is None
        if description_only:
            line.update({"LineAmount": ZERO, "TaxAmount": ZERO, "Tracking": []})
            if raw.get("AccountCode"):
                line["AccountCode"] = raw["AccountCode"]
            result.lines.append(line)
            continue
        if qty is None:
            qty = Decimal(1)
        if unit is None:
            unit = (given_amount or ZERO) / qty if qty else ZERO
        unit = unit.quantize(unit_q, rounding=ROUND_HALF_UP)
        qty = qty.quantize(FOUR, rounding=ROUND_HALF_UP)
        gross = qty * unit
        discount_rate = to_decimal(raw.get("DiscountRate"))
        discount_amount = to_decimal(raw.get("DiscountAmount"))
        if (discount_rate or discount_amount) and not allow_discount:
            result.errors.append(MSG_NO_DISCOUNT_ON_CN)
        if discount_rate:
            amount = r2(gross * (HUNDRED - discount_rate) / HUNDRED)
            line["DiscountRate"] = discount_rate.quantize(TWO)
        elif discount_amount:
            amount = r2(gross - discount_amount)
            line["DiscountAmount"] = r2(discount_amount)
        else:
            amount = r2(gross)
        result.total_discount += r2(gross) - amount
        line.update({"Quantity": qty, "UnitAmount": unit, "LineAmount": amount})
        if raw.get("ItemCode"):
            line["ItemCode"] = raw["ItemCode"]
        line["Tracking"] = list(raw.get("Tracking") or [])

        # Account: must exist, be active and suit the document (stricter reading, notes §8).
        code = raw.get("AccountCode")
        account = account_by_code(org, code, raw.get("AccountID"))
        if not code and not raw.get("AccountID"):
            result.errors.append(MSG_ACCOUNT_REQUIRED)
        elif account is None:
            result.errors.append(MSG_ACCOUNT_NOT_VALID.format(code=code or raw.get("AccountID")))
        elif account["Status"] != "ACTIVE":
            result.errors.append(MSG_ACCOUNT_ARCHIVED.format(code=account["Code"]))
        elif account["Type"] not in allowed_account_types or account.get("SystemAccount"):
            result.errors.append(MSG_ACCOUNT_NOT_VALID.format(code=account["Code"]))
        if account is not None:
            line["AccountCode"] = account["Code"]
            line["AccountID"] = account["AccountID"]

        # Tax type: must exist, be active, and be usable with the account's class.
        if line_amount_types == "NoTax":
            tax_type = "NONE"
        else:
            tax_type = raw.get("TaxType") or (account or {}).get("TaxType") or "NONE"
        rate_record = org["tax_rates"].get(tax_type)
        rate = ZERO
        if rate_record is None or rate_record["Status"] != "ACTIVE":
            result.errors.append(MSG_TAX_NOT_EXIST.format(tax=tax_type))
        else:
            rate = Decimal(rate_record["EffectiveRate"])
            if account is not None and not _tax_suits(rate_record, account):
                result.errors.append(
                    MSG_TAX_WRONG_ACCOUNT.format(tax=tax_type, code=account["Code"])
                )
        line["TaxType"] = tax_type

        given_tax = to_decimal(raw.get("TaxAmount"))
        if line_amount_types == "NoTax":
            tax = ZERO
        elif keep_tax_amounts and given_tax is not None:
            tax = r2(given_tax)  # spec LineItem.TaxAmount: "can be overriden"
        elif line_amount_types == "Inclusive":
            tax = r2(amount * rate / (HUNDRED + rate))
        else:
            tax = r2(amount * rate / HUNDRED)
        line["TaxAmount"] = tax
        result.lines.append(line)
        result.total_tax += tax
        if line_amount_types == "Inclusive":
            result.sub_total += amount - tax
            result.total += amount
        else:
            result.sub_total += amount
            result.total += amount + tax
    result.sub_total = r2(result.sub_total)
    result.total_tax = r2(result.total_tax)
    result.total = r2(result.total)
    result.total_discount = r2(result.total_discount)
    return result


def _tax_suits(rate: dict[str, Any], account: dict[str, Any]) -> bool:
    flag = {
        "REVENUE": "CanApplyToRevenue",
        "EXPENSE": "CanApplyToExpenses",
        "ASSET": "CanApplyToAssets",
        "LIABILITY": "CanApplyToLiabilities",
        "EQUITY": "CanApplyToEquity",
    }.get(account.get("Class", ""), "CanApplyToRevenue")
    return bool(rate.get(flag, True))


def is_valid_email(value: str) -> bool:
    if not value:
        return True
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain and " " not in value and not domain.startswith("."))
