"""The Accounting API under /api.xro/2.0: Organisation, Accounts, TaxRates, Currencies, Contacts,
Invoices (ACCREC), Payments, CreditNotes (+ Allocations) and ManualJournals.

Each handler runs under the state lock, so a request is atomic with respect to the others. Batch
writes are deliberately NOT transactional (xero-api-notes.md §2): each element is validated and
committed on its own; with summarizeErrors (the default) a failing element turns the reply into a
400 ValidationException even though the valid elements were created.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from . import rules
from .jsonutil import ZERO_GUID, ms_timestamp, parse_date, parse_http_datetime, to_decimal
from .rules import ZERO, ValidationFailure, money, r2
from .state import State, new_id
from .where import WhereError, compile_where

Body = dict[str, Any]
Reply = tuple[int, Any]

CONTACT_WRITABLE = (
    "ContactNumber",
    "AccountNumber",
    "ContactStatus",
    "Name",
    "FirstName",
    "LastName",
    "CompanyNumber",
    "EmailAddress",
    "ContactPersons",
    "BankAccountDetails",
    "TaxNumber",
    "TaxNumberType",
    "AccountsReceivableTaxType",
    "AccountsPayableTaxType",
    "Addresses",
    "Phones",
    "DefaultCurrency",
    "XeroNetworkKey",
    "SalesDefaultAccountCode",
    "PurchasesDefaultAccountCode",
    "SalesDefaultLineAmountType",
    "PurchasesDefaultLineAmountType",
    "SalesTrackingCategories",
    "PurchasesTrackingCategories",
    "TrackingCategoryName",
    "TrackingCategoryOption",
    "PaymentTerms",
    "ContactGroups",
)
DOC_SIMPLE_FIELDS = ("Reference", "Url", "BrandingThemeID", "SentToContact")


@dataclass
class Ctx:
    state: State
    org: dict[str, Any]
    tenant_id: str
    app: dict[str, Any]
    now: datetime
    query: dict[str, str]
    headers: dict[str, str]
    unitdp: int = 2
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.org.get("timezone") or "UTC")).date()

    def flag(self, name: str, default: bool) -> bool:
        """Query booleans arrive as True/False/true/false (xero-python sends Python's repr)."""
        value = self.query.get(name.lower())
        if value is None or value == "":
            return default
        return value.strip().lower() in {"true", "1", "yes"}

    def event(self, category: str, kind: str, resource_id: str) -> None:
        self.events.append((category, kind, resource_id))


class NotFound(Exception):
    pass


class BadQuery(Exception):
    pass


# --- envelope & errors ----------------------------------------------------------------------------


def envelope(ctx: Ctx, collection: str, items: list[Any], **extra: Any) -> Body:
    body: Body = {
        "Id": new_id(),
        "Status": "OK",
        "ProviderName": ctx.app.get("name", "Xero Sandbox"),
        "DateTimeUTC": ms_timestamp(ctx.now),
    }
    body.update(extra)
    body[collection] = items
    return body


def validation_exception(elements: list[Any]) -> Body:
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def no_data(kind: str) -> Reply:
    # xero-api-notes.md §2 (xero-php-oauth2#48), verbatim including Xero's "specifed".
    return 400, {
        "ErrorNumber": 17,
        "Type": "NoDataProcessedException",
        "Message": (
            "No data has been processed for this endpoint. This endpoint is expecting "
            f"{kind} data to be specifed in the request body."
        ),
    }


def failed_element(element: Any, id_field: str, flag_field: str, messages: list[str]) -> Body:
    echo = copy.deepcopy(element) if isinstance(element, dict) else {}
    echo[id_field] = ZERO_GUID  # xero-api-notes.md §2: failed elements carry an all-zero GUID
    echo[flag_field] = True
    echo["StatusAttributeString"] = "ERROR"
    echo["ValidationErrors"] = [{"Message": m} for m in messages]
    return echo


def run_batch(
    ctx: Ctx,
    elements: list[Any],
    apply: Callable[[Body], Body],
    *,
    collection: str,
    id_field: str,
    flag_field: str,
    summarize_default: bool = True,
) -> Reply:
    summarize = ctx.flag("summarizeErrors", summarize_default)
    outputs: list[Body] = []
    failures: list[Body] = []
    for element in elements:
        if not isinstance(element, dict):
            failures.append(failed_element({}, id_field, flag_field, ["Element must be an object"]))
            outputs.append(failures[-1])
            continue
        try:
            output = apply(element)
        except ValidationFailure as failure:
            failed = failed_element(element, id_field, flag_field, failure.messages)
            failures.append(failed)
            outputs.append(failed)
            continue
        output["StatusAttributeString"] = "OK"
        outputs.append(output)
    if failures and summarize:
        return 400, validation_exception(failures)
    return 200, envelope(ctx, collection, outputs)


def elements_of(body: Any, collection: str) -> list[Any] | None:
    """`{"Invoices": [...]}` as the SDK sends it, or a single bare element."""
    if not isinstance(body, dict):
        return None
    if collection in body:
        value = body[collection]
        return value if isinstance(value, list) and value else None
    keys = set(body) - {"pagination", "Warnings"}
    return [body] if keys else None


# --- GET helpers ----------------------------------------------------------------------------------


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def list_query(
    ctx: Ctx,
    docs: list[Body],
    *,
    paged: bool = True,
    archived_filter: Callable[[Body], bool] | None = None,
) -> tuple[list[Body], Body]:
    """where / order / If-Modified-Since / page+pageSize over rendered documents."""
    try:
        predicate = compile_where(ctx.query.get("where"))
    except WhereError as exc:
        raise BadQuery(str(exc)) from exc
    since_raw = ctx.headers.get("if-modified-since")
    if since_raw:
        try:
            since = parse_http_datetime(since_raw).replace(microsecond=0)
        except (ValueError, TypeError) as exc:
            raise BadQuery(f"If-Modified-Since could not be parsed: {since_raw}") from exc
        # RR: "accurate to the second"; "since" read strictly (modified after that second).
        # Resources without UpdatedDateUTC (TaxRates, Currencies) ignore the header.
        docs = [
            d
            for d in docs
            if "UpdatedDateUTC" not in d or d["UpdatedDateUTC"].replace(microsecond=0) > since
        ]
    if archived_filter is not None and not ctx.flag("includeArchived", False):
        docs = [d for d in docs if archived_filter(d)]
    if predicate is not None:
        docs = [d for d in docs if predicate(d)]
    order = ctx.query.get("order")
    if order:
        name, _, direction = order.strip().partition(" ")
        reverse = direction.strip().upper() == "DESC"
        docs = sorted(docs, key=lambda d: _sort_key(d.get(name)), reverse=reverse)
    extra: Body = {}
    if paged and ctx.query.get("page"):
        try:
            page = max(1, int(ctx.query["page"]))
            size_raw = ctx.query.get("pagesize")
            page_size = int(size_raw) if size_raw else 100
        except ValueError as exc:
            raise BadQuery("page and pageSize must be integers") from exc
        # Developer email quoted in calcinai/xero-php#915: custom page size up to 1000, default 100.
        page_size = min(max(page_size, 1), 1000)
        total = len(docs)
        extra["pagination"] = {
            "page": page,
            "pageSize": page_size,
            "pageCount": math.ceil(total / page_size) if total else 0,
            "itemCount": total,
        }
        docs = docs[(page - 1) * page_size : page * page_size]
    return docs, extra


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, datetime | date):
        return (1, value.isoformat())
    if isinstance(value, Decimal | int):
        return (2, value)
    return (3, str(value))


def find_by_id(items: dict[str, Body], value: str, *alt_fields: str) -> Body | None:
    lowered = value.lower()
    for key, doc in items.items():
        if key.lower() == lowered:
            return doc
    for doc in items.values():
        for name in alt_fields:
            if doc.get(name) and str(doc[name]) == value:
                return doc
    return None


# --- Organisation / Accounts / TaxRates / Currencies ----------------------------------------------


def get_organisation(ctx: Ctx) -> Reply:
    org = copy.deepcopy(ctx.org["organisation"])
    if ctx.org.get("period_lock_date"):
        org["PeriodLockDate"] = ctx.org["period_lock_date"]
    return 200, envelope(ctx, "Organisations", [org])


def get_accounts(ctx: Ctx, account_id: str | None) -> Reply:
    accounts = [copy.deepcopy(a) for a in ctx.org["accounts"].values()]
    if account_id:
        found = [a for a in accounts if a["AccountID"].lower() == account_id.lower()]
        if not found:
            raise NotFound
        return 200, envelope(ctx, "Accounts", found)
    docs, _ = list_query(ctx, accounts, paged=False)
    return 200, envelope(ctx, "Accounts", docs)


def get_tax_rates(ctx: Ctx, tax_type: str | None) -> Reply:
    rates = [copy.deepcopy(r) for r in ctx.org["tax_rates"].values()]
    wanted = tax_type or ctx.query.get("taxtype")
    if wanted:
        rates = [r for r in rates if r["TaxType"] == wanted]
    docs, _ = list_query(ctx, rates, paged=False)
    return 200, envelope(ctx, "TaxRates", docs)


def get_currencies(ctx: Ctx) -> Reply:
    from .seed import CURRENCY_NAMES  # noqa: PLC0415 - avoids a seed<->accounting import cycle

    items = [{"Code": c, "Description": CURRENCY_NAMES.get(c, c)} for c in ctx.org["currencies"]]
    docs, _ = list_query(ctx, items, paged=False)
    return 200, envelope(ctx, "Currencies", docs)


# --- Contacts -------------------------------------------------------------------------------------


def _norm_name(name: str) -> str:
    return " ".join(name.split()).lower()


def render_contact(contact: Body) -> Body:
    return copy.deepcopy(contact)


def contact_summary(contact: Body) -> Body:
    summary: Body = {
        "ContactID": contact["ContactID"],
        "Name": contact["Name"],
        "ContactStatus": contact["ContactStatus"],
        "HasValidationErrors": False,
    }
    for key in ("ContactNumber", "EmailAddress"):
        if contact.get(key):
            summary[key] = contact[key]
    return summary


def contact_apply(ctx: Ctx, element: Body, existing: Body | None) -> Body:
    errors: list[str] = []
    contacts = ctx.org["contacts"]
    merged: Body = copy.deepcopy(existing) if existing else {}
    for key in CONTACT_WRITABLE:
        if key in element and element[key] is not None:
            merged[key] = copy.deepcopy(element[key])
    name = str(merged.get("Name") or "").strip()
    if not name:
        errors.append(rules.MSG_CONTACT_NAME_EMPTY)
    status = merged.get("ContactStatus") or "ACTIVE"
    if status not in {"ACTIVE", "ARCHIVED"}:
        errors.append(f"ContactStatus {status} cannot be set through the API.")  # not confirmed
    self_id = existing["ContactID"] if existing else None
    if name and status == "ACTIVE":
        for other in contacts.values():
            if (
                other["ContactID"] != self_id
                and other["ContactStatus"] == "ACTIVE"
                and _norm_name(other["Name"]) == _norm_name(name)
            ):
                errors.append(rules.MSG_CONTACT_NAME_TAKEN.format(name=name))
                break
    number = merged.get("ContactNumber")
    if number:
        for other in contacts.values():
            if other["ContactID"] != self_id and other.get("ContactNumber") == number:
                errors.append(rules.MSG_CONTACT_NUMBER_TAKEN.format(number=number))
                break
    if not rules.is_valid_email(str(merged.get("EmailAddress") or "")):
        errors.append(rules.MSG_EMAIL_INVALID)
    currency = merged.get("DefaultCurrency")
    if currency and currency not in ctx.org["currencies"]:
        errors.append(rules.MSG_CURRENCY.format(code=currency))
    if errors:
        raise ValidationFailure(errors)
    merged["Name"] = name
    merged["ContactStatus"] = status
    if existing is None:
        merged["ContactID"] = new_id()
        merged.setdefault("Addresses", [{"AddressType": "POBOX"}, {"AddressType": "STREET"}])
        merged.setdefault("Phones", [{"PhoneType": t} for t in ("DEFAULT", "DDI", "FAX", "MOBILE")])
        merged.setdefault("ContactGroups", [])
        merged.setdefault("ContactPersons", [])
        merged.update(
            {
                "IsSupplier": False,
                "IsCustomer": False,
                "HasAttachments": False,
                "HasValidationErrors": False,
            }
        )
    merged["UpdatedDateUTC"] = ctx.now
    contacts[merged["ContactID"]] = merged
    ctx.event("CONTACT", "UPDATE" if existing else "CREATE", merged["ContactID"])
    return render_contact(merged)


def contact_match(ctx: Ctx, element: Body) -> Body | None:
    """POST /Contacts upsert: by ContactID, then ContactNumber, then Name among active contacts
    (legacy doc + user reports, xero-api-notes.md §7; exact precedence not confirmed)."""
    contacts = ctx.org["contacts"]
    if element.get("ContactID"):
        found = find_by_id(contacts, str(element["ContactID"]))
        if found is None:
            raise ValidationFailure([rules.MSG_CONTACT_NOT_FOUND.format(id=element["ContactID"])])
        return found
    if element.get("ContactNumber"):
        for contact in contacts.values():
            if contact.get("ContactNumber") == element["ContactNumber"]:
                return cast(Body, contact)
    if element.get("Name"):
        for contact in contacts.values():
            if contact["ContactStatus"] == "ACTIVE" and _norm_name(contact["Name"]) == _norm_name(
                str(element["Name"])
            ):
                return cast(Body, contact)
    return None


def get_contacts(ctx: Ctx, ident: str | None) -> Reply:
    contacts = ctx.org["contacts"]
    if ident:
        found = find_by_id(contacts, ident, "ContactNumber")
        if found is None:
            raise NotFound
        return 200, envelope(ctx, "Contacts", [render_contact(found)])
    docs = [render_contact(c) for c in contacts.values()]
    ids = {i.lower() for i in _split(ctx.query.get("ids"))}
    if ids:
        docs = [d for d in docs if d["ContactID"].lower() in ids]
    term = (ctx.query.get("searchterm") or "").lower()
    if term:
        docs = [
            d
            for d in docs
            if any(
                term in str(d.get(k) or "").lower()
                for k in ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
            )
        ]
    docs, extra = list_query(ctx, docs, archived_filter=lambda d: d["ContactStatus"] != "ARCHIVED")
    return 200, envelope(ctx, "Contacts", docs, **extra)


def put_contacts(ctx: Ctx, body: Any) -> Reply:
    elements = elements_of(body, "Contacts")
    if elements is None:
        return no_data("Contact")
    return run_batch(
        ctx,
        elements,
        lambda e: contact_apply(ctx, e, None),
        collection="Contacts",
        id_field="ContactID",
        flag_field="HasValidationErrors",
    )


def post_contacts(ctx: Ctx, body: Any, contact_id: str | None) -> Reply:
    elements = elements_of(body, "Contacts")
    if elements is None:
        return no_data("Contact")
    if contact_id is not None:
        target = find_by_id(ctx.org["contacts"], contact_id, "ContactNumber")
        if target is None:
            raise NotFound
        return run_batch(
            ctx,
            elements[:1],
            lambda e: contact_apply(ctx, e, target),
            collection="Contacts",
            id_field="ContactID",
            flag_field="HasValidationErrors",
        )
    return run_batch(
        ctx,
        elements,
        lambda e: contact_apply(ctx, e, contact_match(ctx, e)),
        collection="Contacts",
        id_field="ContactID",
        flag_field="HasValidationErrors",
    )


# --- Invoices and credit notes (shared document machinery) ----------------------------------------


@dataclass(frozen=True)
class DocKind:
    collection: str  # "Invoices" / "CreditNotes"
    store: str  # org key
    id_field: str
    number_field: str
    number_prefix: str
    doc_type: str  # ACCREC / ACCRECCREDIT
    label: str  # for messages
    event_category: str | None
    allow_discount: bool
    due_date_required: bool


INVOICE = DocKind(
    "Invoices",
    "invoices",
    "InvoiceID",
    "InvoiceNumber",
    "INV-",
    "ACCREC",
    "Invoice",
    "INVOICE",
    True,
    True,
)
CREDIT_NOTE = DocKind(
    "CreditNotes",
    "credit_notes",
    "CreditNoteID",
    "CreditNoteNumber",
    "CN-",
    "ACCRECCREDIT",
    "Credit Note",
    None,
    False,
    False,
)


def _next_number(ctx: Ctx, kind: DocKind) -> str:
    used = {d.get(kind.number_field) for d in ctx.org[kind.store].values()}
    counter = len(ctx.org[kind.store]) + 1
    while f"{kind.number_prefix}{counter:04d}" in used:
        counter += 1
    return f"{kind.number_prefix}{counter:04d}"


def _resolve_contact(ctx: Ctx, ref: Any, errors: list[str]) -> tuple[Body | None, Body | None]:
    """Returns (existing contact, contact to create). Xero creates a contact named on a document
    when no active contact has that name."""
    if not isinstance(ref, dict) or not any(
        ref.get(k) for k in ("ContactID", "ContactNumber", "Name")
    ):
        errors.append(rules.MSG_CONTACT_REQUIRED)
        return None, None
    contacts = ctx.org["contacts"]
    found: Body | None = None
    if ref.get("ContactID"):
        found = find_by_id(contacts, str(ref["ContactID"]))
        if found is None:
            errors.append(rules.MSG_CONTACT_NOT_FOUND.format(id=ref["ContactID"]))
            return None, None
    elif ref.get("ContactNumber"):
        found = next(
            (c for c in contacts.values() if c.get("ContactNumber") == ref["ContactNumber"]), None
        )
    if found is None and ref.get("Name"):
        name = _norm_name(str(ref["Name"]))
        found = next(
            (
                c
                for c in contacts.values()
                if c["ContactStatus"] == "ACTIVE" and _norm_name(c["Name"]) == name
            ),
            None,
        )
        if found is None:
            found = next((c for c in contacts.values() if _norm_name(c["Name"]) == name), None)
    if found is None:
        if ref.get("Name"):
            return None, {
                "Name": str(ref["Name"]).strip(),
                "ContactNumber": ref.get("ContactNumber"),
            }
        errors.append(rules.MSG_CONTACT_REQUIRED)
        return None, None
    if found["ContactStatus"] == "ARCHIVED":
        errors.append(rules.MSG_CONTACT_ARCHIVED.format(name=found["Name"]))
    return found, None


def _has_allocations(doc: Body, kind: DocKind) -> bool:
    if kind is INVOICE:
        return bool(doc["AmountPaid"] > 0 or doc["AmountCredited"] > 0)
    return bool(doc.get("Allocations")) or bool(doc.get("Payments"))


def _changes_anything(doc: Body, element: Body, kind: DocKind) -> bool:
    for key in (
        "LineItems",
        "Contact",
        "Date",
        "DueDate",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        *DOC_SIMPLE_FIELDS,
    ):
        if key not in element or element[key] is None:
            continue
        if key in {"LineItems", "Contact"}:
            return True
        current = doc.get(key)
        new = element[key]
        if key in {"Date", "DueDate"}:
            try:
                new = parse_date(new)
            except ValueError:
                return True
        if key == "CurrencyRate":
            new, current = to_decimal(new), to_decimal(current)
        if new != current:
            return True
    status = element.get("Status")
    return bool(status and status != doc["Status"])


def doc_apply(ctx: Ctx, kind: DocKind, element: Body, existing: Body | None) -> Body:
    errors: list[str] = []
    doc_type = element.get("Type") or (existing or {}).get("Type")
    if existing is None and not doc_type:
        errors.append(rules.MSG_TYPE_REQUIRED)
    elif doc_type and doc_type != kind.doc_type:
        raise ValidationFailure(
            [rules.MSG_TYPE_UNSUPPORTED.format(allowed=kind.doc_type, type=doc_type)]
        )

    if existing is not None:
        if _has_allocations(existing, kind) and _changes_anything(existing, element, kind):
            raise ValidationFailure([rules.MSG_ALLOCATED_NO_EDIT])
        if existing["Status"] in {"VOIDED", "DELETED", "PAID"} and _changes_anything(
            existing, element, kind
        ):
            raise ValidationFailure([rules.MSG_INVALID_STATUS_MODIFY])

    old_status = existing["Status"] if existing else None
    status = element.get("Status") or old_status or "DRAFT"
    if existing is None and status not in rules.CREATE_STATUSES:
        errors.append(rules.MSG_INVALID_STATUS_CREATE.format(type=kind.label, status=status))
    if (
        old_status
        and status != old_status
        and (old_status, status) not in rules.INVOICE_TRANSITIONS
    ):
        errors.append(rules.MSG_INVALID_STATUS_MODIFY)

    contact, new_contact = (None, None)
    if element.get("Contact") is not None or existing is None:
        contact, new_contact = _resolve_contact(ctx, element.get("Contact"), errors)
    else:
        contact = ctx.org["contacts"].get(existing["ContactID"])

    try:
        doc_date = parse_date(element.get("Date")) if element.get("Date") else None
        due_date = parse_date(element.get("DueDate")) if element.get("DueDate") else None
    except ValueError as exc:
        raise ValidationFailure([str(exc)]) from exc
    doc_date = doc_date or (existing or {}).get("Date") or ctx.today()
    due_date = due_date or (existing or {}).get("DueDate")
    if kind.due_date_required and status not in {"DRAFT", "DELETED"} and due_date is None:
        # Stricter reading (notes §7: DueDate derived from payment terms is not confirmed).
        errors.append(rules.MSG_DUE_DATE_REQUIRED)

    line_amount_types = (
        element.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") or "Exclusive"
    )
    currency = (
        element.get("CurrencyCode")
        or (existing or {}).get("CurrencyCode")
        or ctx.org["organisation"]["BaseCurrency"]
    )
    if currency not in ctx.org["currencies"]:
        errors.append(rules.MSG_CURRENCY.format(code=currency))
    rate = to_decimal(element.get("CurrencyRate")) or (existing or {}).get("CurrencyRate")
    if rate is None:
        # Xero uses the XE.com day rate when none is given (spec); the sandbox has no rates: 1.
        rate = Decimal("1.000000")

    number = (
        element.get(kind.number_field)
        or (existing or {}).get(kind.number_field)
        or _next_number(ctx, kind)
    )
    self_id = existing[kind.id_field] if existing else None
    for other in ctx.org[kind.store].values():
        # Uniqueness across every status, including VOIDED/DELETED (stricter; not confirmed).
        if other[kind.id_field] != self_id and other.get(kind.number_field) == number:
            errors.append(
                rules.MSG_INVOICE_NUMBER_TAKEN if kind is INVOICE else rules.MSG_CN_NUMBER_TAKEN
            )
            break

    if element.get("LineItems") is not None:
        raw_lines, keep_tax, unitdp = element["LineItems"], True, ctx.unitdp
    else:
        # Stored lines keep their stored precision (up to 4 dp) whatever this request's unitdp.
        raw_lines, unitdp = (existing or {}).get("LineItems", []), 4
        keep_tax = line_amount_types == (existing or {}).get("LineAmountTypes")
    lines = rules.compute_lines(
        ctx.org,
        raw_lines,
        line_amount_types=line_amount_types,
        unitdp=unitdp,
        allow_discount=kind.allow_discount,
        allowed_account_types=rules.REVENUE_TYPES,
        new_id=new_id,
        keep_tax_amounts=keep_tax,
    )
    errors.extend(lines.errors)
    if existing is None or status in {"AUTHORISED", "VOIDED"}:
        # Posting or reversing in a locked period is refused (RN [S] "No edits in a locked
        # period"); new documents are checked whatever their status - the stricter choice.
        rules.check_period_lock(ctx.org, doc_date, errors)
    if errors:
        raise ValidationFailure(list(dict.fromkeys(errors)))

    # --- commit ---
    if new_contact is not None:
        contact = contact_apply(
            ctx,
            {"Name": new_contact["Name"], "ContactNumber": new_contact.get("ContactNumber")},
            None,
        )
        contact = ctx.org["contacts"][contact["ContactID"]]
    assert contact is not None
    doc: Body = (
        copy.deepcopy(existing)
        if existing
        else {
            kind.id_field: new_id(),
            "Type": kind.doc_type,
            "Payments": [],
            "HasAttachments": False,
        }
    )
    if kind is INVOICE:
        doc.setdefault("AmountPaid", ZERO)
        doc.setdefault("AmountCredited", ZERO)
    doc.update(
        {
            kind.number_field: number,
            "ContactID": contact["ContactID"],
            "Date": doc_date,
            "Status": status,
            "LineAmountTypes": line_amount_types,
            "LineItems": lines.lines,
            "SubTotal": lines.sub_total,
            "TotalTax": lines.total_tax,
            "Total": lines.total,
            "CurrencyCode": currency,
            "CurrencyRate": rate,
            "UpdatedDateUTC": ctx.now,
        }
    )
    if due_date:
        doc["DueDate"] = due_date
    if kind is INVOICE:
        doc["TotalDiscount"] = lines.total_discount
        doc["IsDiscounted"] = lines.total_discount > 0
        doc.setdefault("CreditNotes", [])
    else:
        doc.setdefault("Allocations", [])
    for key in DOC_SIMPLE_FIELDS:
        if element.get(key) is not None:
            doc[key] = element[key]
    recompute_balances(kind, doc)
    if status == "AUTHORISED" and old_status != "AUTHORISED" and kind is INVOICE:
        contact["IsCustomer"] = True  # notes §4: does not move the contact's UpdatedDateUTC
    ctx.org[kind.store][doc[kind.id_field]] = doc
    if kind.event_category:
        ctx.event(kind.event_category, "UPDATE" if existing else "CREATE", doc[kind.id_field])
    return render_doc(ctx, kind, doc, with_lines=True)


def recompute_balances(kind: DocKind, doc: Body) -> None:
    """AmountDue = Total - AmountPaid - AmountCredited; 0 => PAID (notes §9)."""
    if kind is INVOICE:
        paid = r2(sum((p["Amount"] for p in doc["Payments"]), ZERO))
        credited = r2(sum((c["AppliedAmount"] for c in doc.get("CreditNotes", [])), ZERO))
        doc["AmountPaid"], doc["AmountCredited"] = paid, credited
        settled = paid + credited
        dates = [p["Date"] for p in doc["Payments"]] + [
            c["Date"] for c in doc.get("CreditNotes", [])
        ]
    else:
        settled = r2(
            sum((a["Amount"] for a in doc.get("Allocations", [])), ZERO)
            + sum((p["Amount"] for p in doc.get("Payments", [])), ZERO)
        )
        dates = [a["Date"] for a in doc.get("Allocations", [])]
    due = ZERO if doc["Status"] in {"VOIDED", "DELETED"} else r2(doc["Total"] - settled)
    if kind is INVOICE:
        doc["AmountDue"] = due
    else:
        doc["RemainingCredit"] = due
        doc["AppliedAmount"] = r2(settled)
    if doc["Status"] in {"AUTHORISED", "PAID"}:
        if due == 0 and settled > 0:
            doc["Status"] = "PAID"
            doc["FullyPaidOnDate"] = max(dates) if dates else doc["Date"]
        else:
            doc["Status"] = "AUTHORISED"
            doc.pop("FullyPaidOnDate", None)


def render_doc(ctx: Ctx, kind: DocKind, doc: Body, *, with_lines: bool) -> Body:
    out = copy.deepcopy(doc)
    contact = ctx.org["contacts"].get(out.pop("ContactID"))
    if contact:
        out["Contact"] = contact_summary(contact)
    unit_q = rules.FOUR if ctx.unitdp == 4 else rules.TWO
    if with_lines:
        for line in out["LineItems"]:
            if "UnitAmount" in line:
                line["UnitAmount"] = line["UnitAmount"].quantize(unit_q)
    else:
        out.pop("LineItems", None)
    if kind is INVOICE:
        out.setdefault("Prepayments", [])
        out.setdefault("Overpayments", [])
        out["HasErrors"] = False
    else:
        out["HasErrors"] = False
    return out


def _doc_match(ctx: Ctx, kind: DocKind, element: Body) -> Body | None:
    store = ctx.org[kind.store]
    if element.get(kind.id_field):
        found = find_by_id(store, str(element[kind.id_field]))
        if found is None:
            raise ValidationFailure([f"{kind.label} {element[kind.id_field]} could not be found."])
        return found
    if element.get(kind.number_field):
        return next(
            (d for d in store.values() if d.get(kind.number_field) == element[kind.number_field]),
            None,
        )
    return None


def get_docs(ctx: Ctx, kind: DocKind, ident: str | None) -> Reply:
    store = ctx.org[kind.store]
    if ident:
        found = find_by_id(store, ident, kind.number_field)
        if found is None:
            raise NotFound
        return 200, envelope(ctx, kind.collection, [render_doc(ctx, kind, found, with_lines=True)])
    # Without paging, multi-record GETs return summaries without line items (notes §4).
    paged = bool(ctx.query.get("page"))
    summary_only = ctx.flag("summaryOnly", False)
    docs = [render_doc(ctx, kind, d, with_lines=paged and not summary_only) for d in store.values()]
    ids = {i.lower() for i in _split(ctx.query.get("ids"))}
    if ids:
        docs = [d for d in docs if d[kind.id_field].lower() in ids]
    numbers = set(_split(ctx.query.get("invoicenumbers"))) if kind is INVOICE else set()
    if numbers:
        docs = [d for d in docs if d.get(kind.number_field) in numbers]
    contact_ids = {i.lower() for i in _split(ctx.query.get("contactids"))}
    if contact_ids:
        docs = [d for d in docs if d.get("Contact", {}).get("ContactID", "").lower() in contact_ids]
    statuses = set(_split(ctx.query.get("statuses")))
    if statuses:
        docs = [d for d in docs if d["Status"] in statuses]
    term = (ctx.query.get("searchterm") or "").lower()
    if term:
        docs = [
            d
            for d in docs
            if term in str(d.get(kind.number_field, "")).lower()
            or term in str(d.get("Reference", "")).lower()
        ]
    docs, extra = list_query(ctx, docs, archived_filter=None)
    return 200, envelope(ctx, kind.collection, docs, **extra)


def put_docs(ctx: Ctx, kind: DocKind, body: Any) -> Reply:
    elements = elements_of(body, kind.collection)
    if elements is None:
        return no_data(kind.label.replace(" ", ""))

    def apply(element: Body) -> Body:
        # PUT creates; a number that already exists fails uniqueness (notes §8 / reliability §1.3).
        return doc_apply(ctx, kind, {k: v for k, v in element.items() if k != kind.id_field}, None)

    return run_batch(
        ctx,
        elements,
        apply,
        collection=kind.collection,
        id_field=kind.id_field,
        flag_field="HasErrors",
    )


def post_docs(ctx: Ctx, kind: DocKind, body: Any, ident: str | None) -> Reply:
    elements = elements_of(body, kind.collection)
    if elements is None:
        return no_data(kind.label.replace(" ", ""))
    if ident is not None:
        target = find_by_id(ctx.org[kind.store], ident, kind.number_field)
        if target is None:
            raise NotFound
        return run_batch(
            ctx,
            elements[:1],
            lambda e: doc_apply(ctx, kind, e, target),
            collection=kind.collection,
            id_field=kind.id_field,
            flag_field="HasErrors",
        )
    return run_batch(
        ctx,
        elements,
        lambda e: doc_apply(ctx, kind, e, _doc_match(ctx, kind, e)),
        collection=kind.collection,
        id_field=kind.id_field,
        flag_field="HasErrors",
    )


# --- Payments -------------------------------------------------------------------------------------


def render_payment(ctx: Ctx, payment: Body) -> Body:
    out = copy.deepcopy(payment)
    invoice = ctx.org["invoices"].get(out.pop("InvoiceID"))
    if invoice:
        out["Invoice"] = {
            "Type": invoice["Type"],
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice["InvoiceNumber"],
            "CurrencyCode": invoice["CurrencyCode"],
            "Payments": [],
            "CreditNotes": [],
            "Prepayments": [],
            "Overpayments": [],
            "HasErrors": False,
            "IsDiscounted": False,
            "HasAttachments": False,
            "InvoicePaymentServices": [],
            "LineItems": [],
        }
        contact = ctx.org["contacts"].get(invoice["ContactID"])
        if contact:
            out["Invoice"]["Contact"] = contact_summary(contact)
    return out


def payment_create(ctx: Ctx, element: Body) -> Body:
    """Apply a payment to an AUTHORISED ACCREC invoice (also used by the control API)."""
    errors: list[str] = []
    if (
        element.get("CreditNote")
        or element.get("CreditNoteNumber")
        or element.get("Prepayment")
        or element.get("Overpayment")
    ):
        raise ValidationFailure([rules.MSG_PAYMENT_TARGET_UNSUPPORTED])
    ref = element.get("Invoice") or {}
    invoice = None
    if ref.get("InvoiceID"):
        invoice = find_by_id(ctx.org["invoices"], str(ref["InvoiceID"]))
    number = ref.get("InvoiceNumber") or element.get("InvoiceNumber")
    if invoice is None and number:
        invoice = next(
            (i for i in ctx.org["invoices"].values() if i["InvoiceNumber"] == number), None
        )
    if invoice is None:
        raise ValidationFailure([rules.MSG_PAYMENT_INVOICE_MISSING])

    account_ref = element.get("Account") or {}
    code = account_ref.get("Code") or element.get("Code")
    account = rules.account_by_code(ctx.org, code, account_ref.get("AccountID"))
    if account is None:
        errors.append(rules.MSG_PAYMENT_ACCOUNT_MISSING)
    elif account["Status"] != "ACTIVE":
        errors.append(rules.MSG_ACCOUNT_ARCHIVED.format(code=account["Code"]))
    elif account["Type"] != "BANK" and not account.get("EnablePaymentsToAccount"):
        errors.append(rules.MSG_PAYMENT_ACCOUNT.format(code=account["Code"]))

    try:
        pay_date = parse_date(element.get("Date"))
    except ValueError as exc:
        raise ValidationFailure([str(exc)]) from exc
    if pay_date is None:
        errors.append(rules.MSG_DATE_REQUIRED)
    amount = to_decimal(element.get("Amount"))
    if invoice["Status"] != "AUTHORISED":
        if invoice["Status"] == "PAID":
            errors.append(rules.MSG_PAYMENT_EXCEEDS)
        else:
            errors.append(rules.MSG_PAYMENT_NOT_AUTHORISED)
    elif amount is None or amount <= 0:
        errors.append(rules.MSG_PAYMENT_AMOUNT)
    elif r2(amount) > invoice["AmountDue"]:
        errors.append(rules.MSG_PAYMENT_EXCEEDS)
    base = ctx.org["organisation"]["BaseCurrency"]
    if (
        account is not None
        and account.get("CurrencyCode")
        # A foreign-currency invoice may be paid from a base-currency bank account (converted at
        # CurrencyRate); a foreign bank account only takes documents in its own currency.
        and account["CurrencyCode"] not in {invoice["CurrencyCode"], base}
    ):
        errors.append(rules.MSG_CURRENCY_MISMATCH)
    rules.check_period_lock(ctx.org, pay_date, errors)
    if errors:
        raise ValidationFailure(list(dict.fromkeys(errors)))
    assert account is not None and amount is not None and pay_date is not None

    rate = to_decimal(element.get("CurrencyRate")) or invoice["CurrencyRate"]
    payment: Body = {
        "PaymentID": new_id(),
        "Date": pay_date,
        "Amount": r2(amount),
        "BankAmount": r2(amount),
        "CurrencyRate": rate,
        "Reference": str(element.get("Reference") or ""),
        "IsReconciled": bool(element.get("IsReconciled", False)),
        "Status": "AUTHORISED",
        "PaymentType": "ACCRECPAYMENT",
        "UpdatedDateUTC": ctx.now,
        "HasAccount": True,
        "HasValidationErrors": False,
        "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
        "InvoiceID": invoice["InvoiceID"],
    }
    ctx.org["payments"][payment["PaymentID"]] = payment
    invoice["Payments"].append(
        {
            "PaymentID": payment["PaymentID"],
            "Date": pay_date,
            "Amount": payment["Amount"],
            "Reference": payment["Reference"],
            "CurrencyRate": rate,
            "HasAccount": False,
            "HasValidationErrors": False,
        }
    )
    recompute_balances(INVOICE, invoice)
    invoice["UpdatedDateUTC"] = ctx.now
    if ctx.state.settings.get("invoice_update_on_payment"):
        ctx.event("INVOICE", "UPDATE", invoice["InvoiceID"])
    return render_payment(ctx, payment)


def payment_delete(ctx: Ctx, payment: Body, element: Body) -> Body:
    status = element.get("Status")
    if status != "DELETED":
        raise ValidationFailure([rules.MSG_PAYMENT_ONLY_DELETE])
    if payment["Status"] == "DELETED":
        raise ValidationFailure([rules.MSG_PAYMENT_ALREADY_DELETED])
    errors: list[str] = []
    rules.check_period_lock(ctx.org, payment["Date"], errors)
    if errors:
        raise ValidationFailure(errors)
    payment["Status"] = "DELETED"
    payment["UpdatedDateUTC"] = ctx.now
    invoice = ctx.org["invoices"].get(payment["InvoiceID"])
    if invoice is not None:
        # A deleted payment re-opens the invoice (notes §9).
        invoice["Payments"] = [
            p for p in invoice["Payments"] if p["PaymentID"] != payment["PaymentID"]
        ]
        recompute_balances(INVOICE, invoice)
        invoice["UpdatedDateUTC"] = ctx.now
        if ctx.state.settings.get("invoice_update_on_payment"):
            ctx.event("INVOICE", "UPDATE", invoice["InvoiceID"])
    return render_payment(ctx, payment)


def get_payments(ctx: Ctx, ident: str | None) -> Reply:
    payments = ctx.org["payments"]
    if ident:
        found = find_by_id(payments, ident)
        if found is None:
            raise NotFound
        return 200, envelope(ctx, "Payments", [render_payment(ctx, found)])
    docs = [render_payment(ctx, p) for p in payments.values()]
    docs, extra = list_query(ctx, docs)
    return 200, envelope(ctx, "Payments", docs, **extra)


def put_payments(ctx: Ctx, body: Any) -> Reply:
    elements = elements_of(body, "Payments")
    if elements is None:
        return no_data("Payment")
    return run_batch(
        ctx,
        elements,
        lambda e: payment_create(ctx, e),
        collection="Payments",
        id_field="PaymentID",
        flag_field="HasValidationErrors",
    )


def post_payment(ctx: Ctx, body: Any, ident: str | None) -> Reply:
    elements = elements_of(body, "Payments")
    if elements is None:
        return no_data("Payment")
    if ident is None:  # POST /Payments: createPayment (a single payment)
        return run_batch(
            ctx,
            elements[:1],
            lambda e: payment_create(ctx, e),
            collection="Payments",
            id_field="PaymentID",
            flag_field="HasValidationErrors",
        )
    payment = find_by_id(ctx.org["payments"], ident)
    if payment is None:
        raise NotFound
    return run_batch(
        ctx,
        elements[:1],
        lambda e: payment_delete(ctx, payment, e),
        collection="Payments",
        id_field="PaymentID",
        flag_field="HasValidationErrors",
    )


# --- Credit note allocations ----------------------------------------------------------------------


def allocation_create(ctx: Ctx, credit_note: Body, element: Body) -> Body:
    errors: list[str] = []
    ref = element.get("Invoice") or {}
    invoice = None
    if ref.get("InvoiceID"):
        invoice = find_by_id(ctx.org["invoices"], str(ref["InvoiceID"]))
    elif ref.get("InvoiceNumber"):
        invoice = next(
            (i for i in ctx.org["invoices"].values() if i["InvoiceNumber"] == ref["InvoiceNumber"]),
            None,
        )
    if invoice is None:
        raise ValidationFailure([rules.MSG_PAYMENT_INVOICE_MISSING])
    amount = to_decimal(element.get("Amount"))
    try:
        alloc_date = parse_date(element.get("Date")) or ctx.today()
    except ValueError as exc:
        raise ValidationFailure([str(exc)]) from exc
    if credit_note["Status"] not in {"AUTHORISED"}:
        errors.append(
            rules.MSG_CN_NOT_AUTHORISED
            if credit_note["Status"] != "PAID"
            else rules.MSG_CN_TOO_MUCH
        )
    if invoice["Type"] != "ACCREC":
        errors.append(rules.MSG_CN_WRONG_TYPE)
    elif invoice["Status"] == "PAID":
        errors.append(rules.MSG_CN_ALREADY_PAID)
    elif invoice["Status"] != "AUTHORISED":
        errors.append(rules.MSG_INVALID_STATUS_MODIFY)
    if invoice["CurrencyCode"] != credit_note["CurrencyCode"]:
        errors.append(rules.MSG_CURRENCY_MISMATCH)
    if amount is None or amount <= 0:
        errors.append(rules.MSG_PAYMENT_AMOUNT)
    elif not errors and (
        r2(amount) > credit_note["RemainingCredit"] or r2(amount) > invoice["AmountDue"]
    ):
        errors.append(rules.MSG_CN_TOO_MUCH)
    rules.check_period_lock(ctx.org, alloc_date, errors)
    if errors:
        raise ValidationFailure(list(dict.fromkeys(errors)))
    assert amount is not None
    allocation_id = new_id()
    credit_note["Allocations"].append(
        {
            "AllocationID": allocation_id,
            "Amount": r2(amount),
            "Date": alloc_date,
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
            },
        }
    )
    invoice.setdefault("CreditNotes", []).append(
        {
            "CreditNoteID": credit_note["CreditNoteID"],
            "CreditNoteNumber": credit_note["CreditNoteNumber"],
            "AppliedAmount": r2(amount),
            "Date": alloc_date,
            "Total": credit_note["Total"],
            "HasErrors": False,
        }
    )
    recompute_balances(CREDIT_NOTE, credit_note)
    recompute_balances(INVOICE, invoice)
    credit_note["UpdatedDateUTC"] = invoice["UpdatedDateUTC"] = ctx.now
    ctx.event("INVOICE", "UPDATE", invoice["InvoiceID"])
    return {
        "AllocationID": allocation_id,
        "Amount": r2(amount),
        "Date": alloc_date,
        "Invoice": {
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice["InvoiceNumber"],
            "LineItems": [],
            "Payments": [],
            "CreditNotes": [],
            "Prepayments": [],
            "Overpayments": [],
            "HasErrors": False,
            "IsDiscounted": False,
            "HasAttachments": False,
        },
        "CreditNote": {
            "CreditNoteID": credit_note["CreditNoteID"],
            "CreditNoteNumber": credit_note["CreditNoteNumber"],
            "HasErrors": False,
        },
        "IsDeleted": False,
    }


def put_allocations(ctx: Ctx, credit_note_id: str, body: Any) -> Reply:
    credit_note = find_by_id(ctx.org["credit_notes"], credit_note_id)
    if credit_note is None:
        raise NotFound
    elements = elements_of(body, "Allocations")
    if elements is None:
        return no_data("Allocation")
    status, reply = run_batch(
        ctx,
        elements,
        lambda e: allocation_create(ctx, credit_note, e),
        collection="Allocations",
        id_field="AllocationID",
        flag_field="HasErrors",
    )
    if status == 200:
        for item in reply["Allocations"]:
            item.pop("HasErrors", None)  # not an Allocation property
    return status, reply


# --- Manual journals ------------------------------------------------------------------------------


def journal_apply(ctx: Ctx, element: Body, existing: Body | None) -> Body:
    errors: list[str] = []
    warnings: list[str] = []
    if existing is not None and existing["Status"] in {"VOIDED", "DELETED"}:
        raise ValidationFailure([rules.MSG_JOURNAL_STATUS])
    narration = (
        element.get("Narration") if "Narration" in element else (existing or {}).get("Narration")
    )
    if not narration or not str(narration).strip():
        errors.append(rules.MSG_JOURNAL_NARRATION)
    old_status = (existing or {}).get("Status")
    status = element.get("Status") or old_status or "DRAFT"
    if existing is None and status not in {"DRAFT", "POSTED"}:
        errors.append(rules.MSG_JOURNAL_STATUS)
    if (
        old_status
        and status != old_status
        and (old_status, status) not in rules.JOURNAL_TRANSITIONS
    ):
        errors.append(rules.MSG_JOURNAL_STATUS)
    line_types = (
        element.get("LineAmountTypes") or (existing or {}).get("LineAmountTypes") or "NoTax"
    )
    try:
        journal_date = (
            parse_date(element.get("Date")) or (existing or {}).get("Date") or ctx.today()
        )
    except ValueError as exc:
        raise ValidationFailure([str(exc)]) from exc
    raw_lines = (
        element["JournalLines"]
        if element.get("JournalLines") is not None
        else (existing or {}).get("JournalLines", [])
    )
    lines: list[Body] = []
    debit = credit = ZERO
    for raw in raw_lines:
        code = raw.get("AccountCode")
        account = rules.account_by_code(ctx.org, code, raw.get("AccountID"))
        if account is None:
            warnings.append(
                rules.MSG_JOURNAL_ACCOUNT_REMOVED.format(code=code or raw.get("AccountID") or "")
            )
            continue
        if account["Status"] != "ACTIVE":
            errors.append(rules.MSG_ACCOUNT_ARCHIVED.format(code=account["Code"]))
        elif account["Type"] == "BANK":
            errors.append(rules.MSG_JOURNAL_BANK.format(code=account["Code"]))
        elif account.get("SystemAccount"):
            errors.append(rules.MSG_JOURNAL_SYSTEM.format(code=account["Code"]))
        elif account["Type"] == "INVENTORY":
            errors.append(rules.MSG_JOURNAL_INVENTORY.format(code=account["Code"]))
        amount = money(raw.get("LineAmount"))
        tax_type = (
            "NONE"
            if line_types == "NoTax"
            else (raw.get("TaxType") or account.get("TaxType") or "NONE")
        )
        rate_record = ctx.org["tax_rates"].get(tax_type)
        if rate_record is None:
            errors.append(rules.MSG_TAX_NOT_EXIST.format(tax=tax_type))
            rate = ZERO
        else:
            rate = Decimal(rate_record["EffectiveRate"])
        if line_types == "Exclusive":
            tax = r2(amount * rate / rules.HUNDRED)
        elif line_types == "Inclusive":
            tax = r2(amount * rate / (rules.HUNDRED + rate))
        else:
            tax = ZERO
        gross = amount + tax if line_types == "Exclusive" else amount
        if gross > 0:
            debit += gross
        else:
            credit += gross
        line: Body = {
            "LineAmount": amount,
            "AccountCode": account["Code"],
            "AccountID": account["AccountID"],
            "TaxType": tax_type,
            "TaxAmount": tax,
            "IsBlank": False,
            "Tracking": list(raw.get("Tracking") or []),
        }
        if raw.get("Description") is not None:
            line["Description"] = raw["Description"]
        lines.append(line)
    if len(lines) < 2:
        errors.append(rules.MSG_JOURNAL_TWO_LINES)
    if debit + credit != 0:
        errors.append(
            rules.MSG_JOURNAL_UNBALANCED.format(debit=f"{debit:.2f}", credit=f"{credit:.2f}")
        )
    if status == "POSTED":
        rules.check_period_lock(ctx.org, journal_date, errors)
    if errors:
        raise ValidationFailure(list(dict.fromkeys(errors)))
    journal: Body = (
        copy.deepcopy(existing)
        if existing
        else {
            "ManualJournalID": new_id(),
            "HasAttachments": False,
            "ShowOnCashBasisReports": True,
        }
    )
    journal.update(
        {
            "Narration": str(narration),
            "Date": journal_date,
            "Status": status,
            "LineAmountTypes": line_types,
            "JournalLines": lines,
            "UpdatedDateUTC": ctx.now,
        }
    )
    if element.get("ShowOnCashBasisReports") is not None:
        journal["ShowOnCashBasisReports"] = bool(element["ShowOnCashBasisReports"])
    if element.get("Url") is not None:
        journal["Url"] = element["Url"]
    ctx.org["manual_journals"][journal["ManualJournalID"]] = journal
    out = copy.deepcopy(journal)
    if warnings:
        out["Warnings"] = [{"Message": w} for w in warnings]
    return out


def get_journals(ctx: Ctx, ident: str | None) -> Reply:
    store = ctx.org["manual_journals"]
    if ident:
        found = find_by_id(store, ident)
        if found is None:
            raise NotFound
        return 200, envelope(ctx, "ManualJournals", [copy.deepcopy(found)])
    docs = [copy.deepcopy(j) for j in store.values()]
    docs, extra = list_query(ctx, docs)
    return 200, envelope(ctx, "ManualJournals", docs, **extra)


def write_journals(ctx: Ctx, body: Any, ident: str | None, create_only: bool) -> Reply:
    elements = elements_of(body, "ManualJournals")
    if elements is None:
        return no_data("ManualJournal")
    store = ctx.org["manual_journals"]
    if ident is not None:
        target = find_by_id(store, ident)
        if target is None:
            raise NotFound
        return run_batch(
            ctx,
            elements[:1],
            lambda e: journal_apply(ctx, e, target),
            collection="ManualJournals",
            id_field="ManualJournalID",
            flag_field="HasValidationErrors",
        )

    def apply(element: Body) -> Body:
        existing = None
        if not create_only and element.get("ManualJournalID"):
            existing = find_by_id(store, str(element["ManualJournalID"]))
            if existing is None:
                raise ValidationFailure(
                    [f"Manual Journal {element['ManualJournalID']} could not be found."]
                )
        return journal_apply(ctx, element, existing)

    status, reply = run_batch(
        ctx,
        elements,
        apply,
        collection="ManualJournals",
        id_field="ManualJournalID",
        flag_field="HasValidationErrors",
    )
    return status, reply


# --- routing --------------------------------------------------------------------------------------


def dispatch(ctx: Ctx, method: str, path: str, body: Any) -> Reply:
    """`path` is relative to /api.xro/2.0, e.g. "/Invoices/1234"."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise NotFound
    resource = parts[0].lower()
    ident = parts[1] if len(parts) > 1 else None
    sub = parts[2].lower() if len(parts) > 2 else None
    unitdp = ctx.query.get("unitdp")
    ctx.unitdp = 4 if unitdp == "4" else 2
    if len(parts) > 2 and not (
        resource == "creditnotes" and sub == "allocations" and len(parts) == 3
    ):
        raise NotFound
    method = method.upper()
    if method == "GET":
        getters: dict[str, Callable[[], Reply]] = {
            "organisation": lambda: get_organisation(ctx),
            "accounts": lambda: get_accounts(ctx, ident),
            "taxrates": lambda: get_tax_rates(ctx, ident),
            "currencies": lambda: get_currencies(ctx),
            "contacts": lambda: get_contacts(ctx, ident),
            "invoices": lambda: get_docs(ctx, INVOICE, ident),
            "creditnotes": lambda: get_docs(ctx, CREDIT_NOTE, ident),
            "payments": lambda: get_payments(ctx, ident),
            "manualjournals": lambda: get_journals(ctx, ident),
        }
        if resource in getters:
            return getters[resource]()
        raise NotFound
    if method == "PUT":
        if resource == "contacts" and ident is None:
            return put_contacts(ctx, body)
        if resource == "invoices" and ident is None:
            return put_docs(ctx, INVOICE, body)
        if resource == "creditnotes" and ident is None:
            return put_docs(ctx, CREDIT_NOTE, body)
        if resource == "creditnotes" and sub == "allocations" and ident:
            return put_allocations(ctx, ident, body)
        if resource == "payments" and ident is None:
            return put_payments(ctx, body)
        if resource == "manualjournals" and ident is None:
            return write_journals(ctx, body, None, create_only=True)
        raise NotFound
    if method == "POST":
        if resource == "contacts":
            return post_contacts(ctx, body, ident)
        if resource == "invoices":
            return post_docs(ctx, INVOICE, body, ident)
        if resource == "creditnotes" and sub is None:
            return post_docs(ctx, CREDIT_NOTE, body, ident)
        if resource == "payments":
            return post_payment(ctx, body, ident)
        if resource == "manualjournals":
            return write_journals(ctx, body, ident, create_only=False)
        raise NotFound
    raise NotFound
