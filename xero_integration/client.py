"""The one module that talks to the xero-python SDK.

Everything else calls the typed functions here and handles one exception family:

* XeroTransientError — timeouts, connection errors, 5xx: retry with back-off. `outcome_unknown`
  says whether Xero may have applied the request (the reply was lost), in which case a retry must
  re-send the identical request with the same Idempotency-Key within Xero's window, or look the
  record up by its business key first.
* XeroRateLimitError — a 429 (or our own limiter refusing): wait until `retry_at`; never a failure.
* XeroAuthError — 401/403 on a call, `invalid_grant` on refresh: the connection needs
  re-authorisation; jobs pause, they do not fail.
* XeroPermanentError — validation and other 4xx: record every element's messages and stop.

Every call has a timeout, goes through the shared rate limiter, and runs on a urllib3 pool with
retries turned off: the SDK's default pool silently sleeps through Retry-After and re-sends a PUT
whose reply was lost (xero-api-notes.md §12.10), which must be the job engine's decision instead.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import date as date_cls
from decimal import Decimal
from typing import Any

import redis
import urllib3
from django.conf import settings
from xero_python.accounting import Account as SdkAccount
from xero_python.accounting import AccountingApi, CurrencyCode, LineAmountTypes, PaymentTermType
from xero_python.accounting import Address as SdkAddress
from xero_python.accounting import Allocation as SdkAllocation
from xero_python.accounting import Allocations as SdkAllocations
from xero_python.accounting import Bill as SdkBill
from xero_python.accounting import Contact as SdkContact
from xero_python.accounting import Contacts as SdkContacts
from xero_python.accounting import CreditNote as SdkCreditNote
from xero_python.accounting import CreditNotes as SdkCreditNotes
from xero_python.accounting import Invoice as SdkInvoice
from xero_python.accounting import Invoices as SdkInvoices
from xero_python.accounting import LineItem as SdkLineItem
from xero_python.accounting import ManualJournal as SdkManualJournal
from xero_python.accounting import ManualJournalLine as SdkManualJournalLine
from xero_python.accounting import ManualJournals as SdkManualJournals
from xero_python.accounting import Payment as SdkPayment
from xero_python.accounting import PaymentTerm as SdkPaymentTerm
from xero_python.accounting import Phone as SdkPhone
from xero_python.api_client import ApiClient
from xero_python.api_client.configuration import Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.exceptions import ApiException
from xero_python.exceptions.http_status_exceptions import (
    HTTPStatusException,
    NotFoundException,
    RateLimitException,
)
from xero_python.identity import IdentityApi

from admin_jobs.errors import JobError, JobWait, PermanentJobError, TransientJobError
from xero_integration.ratelimit import CallPermit, RateLimited, XeroRateLimiter

logger = logging.getLogger(__name__)

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
CONNECT_TIMEOUT_SECONDS = 5.0


# --- Errors -----------------------------------------------------------------------------------


class XeroError(JobError):
    """Marker base of every error this module raises. `message` is for people, with what to do
    next, and never holds a token; `detail` is for admins."""


class XeroTransientError(TransientJobError, XeroError):
    def __init__(
        self,
        message: str,
        *,
        outcome_unknown: bool = False,
        retry_after: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, detail=detail or {}, retry_after=retry_after)
        self.outcome_unknown = outcome_unknown


class XeroRateLimitError(JobWait, XeroError):
    """A 429, or BMS's own limiter pacing calls: the job waits; it is never a failure."""

    def __init__(self, message: str, *, problem: str, retry_at: float) -> None:
        super().__init__(message, until=datetime.fromtimestamp(retry_at, tz=UTC))
        self.detail = {"problem": problem, "retry_at": retry_at}
        self.problem = problem
        self.retry_at = retry_at


class XeroAuthError(JobWait, XeroError):
    """The organisation's connection needs re-authorisation (revoked, disconnected, expired):
    its jobs wait until an admin re-authorises, then resume."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, until=None)
        self.detail = detail or {}


@dataclass(frozen=True)
class ElementErrors:
    index: int
    messages: list[str]


class XeroPermanentError(PermanentJobError, XeroError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        elements: list[ElementErrors] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, detail=detail or {})
        self.status = status
        self.elements = elements or []

    @property
    def messages(self) -> list[str]:
        found = [m for element in self.elements for m in element.messages]
        return found or [self.message]


class XeroNotFoundError(XeroPermanentError):
    pass


class XeroTenantMismatchError(XeroPermanentError):
    """A call for one organisation was about to go to another: a bug, so the job stops."""


# --- Values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scopes: list[str]
    id_token: str | None = field(default=None, repr=False)

    @property
    def auth_event_id(self) -> str:
        return str(jwt_claims(self.access_token).get("authentication_event_id", ""))

    @property
    def xero_user_id(self) -> str:
        return str(jwt_claims(self.access_token).get("xero_userid", ""))


@dataclass(frozen=True)
class XeroTenant:
    connection_id: str
    tenant_id: str
    tenant_name: str
    tenant_type: str
    auth_event_id: str


@dataclass(frozen=True)
class CallLimits:
    day_remaining: int | None
    minute_remaining: int | None
    app_minute_remaining: int | None


@dataclass(frozen=True)
class Organisation:
    name: str
    base_currency: str
    short_code: str
    timezone: str
    period_lock_date: Any


@dataclass(frozen=True)
class Account:
    account_id: str
    code: str
    name: str
    type: str
    status: str
    tax_type: str
    is_system_account: bool
    enable_payments: bool
    bank_account: bool


@dataclass(frozen=True)
class TaxRate:
    tax_type: str
    name: str
    effective_rate: Decimal
    status: str
    can_apply_to_revenue: bool


@dataclass(frozen=True)
class AddressData:
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class ContactData:
    """What BMS sends for one contact. Stored as JSON (dataclasses.asdict) before the request
    goes out, so a retry re-sends exactly the same body with the same Idempotency-Key."""

    contact_id: str | None
    name: str
    contact_number: str
    email: str = ""
    phone: str = ""
    tax_number: str = ""
    account_number: str = ""
    currency: str = ""
    terms_type: str = ""
    terms_day: int | None = None
    street: AddressData | None = None
    postal: AddressData | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContactData:
        values = dict(data)
        for key in ("street", "postal"):
            if values.get(key) is not None:
                values[key] = AddressData(**values[key])
        return cls(**values)


@dataclass(frozen=True)
class ContactResult:
    """One element of a contacts write, in request order."""

    contact_id: str | None  # None when Xero created nothing (it answers with a zero GUID)
    name: str
    contact_number: str
    status: str
    errors: list[str]


@dataclass(frozen=True)
class LineData:
    description: str
    quantity: Decimal
    unit_amount: Decimal
    account_code: str
    tax_type: str
    discount_rate: Decimal | None = None


@dataclass(frozen=True)
class DocumentData:
    """An ACCREC invoice or ACCRECCREDIT credit note as BMS sends it; stored as JSON before the
    request goes out (to_json/from_json), so a retry re-sends exactly the same body."""

    xero_id: str | None
    contact_id: str
    number: str
    reference: str
    date: str  # ISO date
    due_date: str | None
    currency: str
    line_amount_type: str
    status: str
    lines: list[LineData]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for line in data["lines"]:
            for key in ("quantity", "unit_amount", "discount_rate"):
                if line[key] is not None:
                    line[key] = str(line[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentData:
        values = dict(data)
        values["lines"] = [
            LineData(
                **{
                    **line,
                    "quantity": Decimal(line["quantity"]),
                    "unit_amount": Decimal(line["unit_amount"]),
                    "discount_rate": Decimal(line["discount_rate"])
                    if line["discount_rate"] is not None
                    else None,
                }
            )
            for line in data["lines"]
        ]
        return cls(**values)


@dataclass(frozen=True)
class DocumentResult:
    """One element of an invoice or credit note write, in request order."""

    xero_id: str | None  # None when Xero created nothing (zero GUID)
    number: str
    status: str
    total: Decimal
    amount_due: Decimal
    errors: list[str]


@dataclass(frozen=True)
class XeroContactRecord:
    contact_id: str
    name: str
    contact_number: str
    status: str
    email: str
    tax_number: str
    updated_at: Any
    is_customer: bool = False
    is_supplier: bool = False


@dataclass(frozen=True)
class XeroInvoiceRecord:
    invoice_id: str
    invoice_number: str
    status: str
    contact_id: str
    currency: str
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    amount_paid: Decimal
    amount_credited: Decimal
    amount_due: Decimal
    updated_at: Any


@dataclass(frozen=True)
class XeroPaymentRecord:
    payment_id: str
    invoice_id: str
    invoice_number: str
    amount: Decimal
    date: Any
    status: str
    reference: str
    updated_at: Any


@dataclass(frozen=True)
class JournalLine:
    account_code: str
    # Xero's sign convention: debits are positive, credits negative (xero-api-notes.md §10).
    line_amount: Decimal
    description: str = ""


@dataclass(frozen=True)
class ManualJournal:
    manual_journal_id: str
    narration: str
    date: Any
    status: str
    lines: list[JournalLine]
    warnings: list[str]


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, unverified: it came straight from the token endpoint
    over TLS, and BMS reads only the auth event id and user id from it."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, json.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


# --- SDK plumbing -----------------------------------------------------------------------------


def _timeout() -> tuple[float, float]:
    return (CONNECT_TIMEOUT_SECONDS, float(settings.XERO_HTTP_TIMEOUT_SECONDS))


def _api_client(access_token: str | None = None) -> ApiClient:
    # Configuration() instances are copies of a class-wide default (TypeWithDefault,
    # xero-api-notes.md §12.10), so everything per-client is set on this instance.
    configuration = Configuration(oauth2_token=OAuth2Token())
    token = {
        "access_token": access_token or "",
        "token_type": "Bearer",
        "scope": list(settings.XERO_SCOPES),
        "expires_in": 1800,
        # No expires_at and no refresh token: the SDK then treats the token as valid and never
        # refreshes by itself; BMS refreshes before calling, under the authorisation's row lock.
    }

    def token_getter() -> dict[str, Any]:
        return token

    def token_saver(new_token: dict[str, Any]) -> None:
        raise XeroError("The SDK tried to store a token; BMS refreshes tokens itself.")

    client = ApiClient(
        configuration,
        pool_threads=1,
        oauth2_token_getter=token_getter,
        oauth2_token_saver=token_saver,
    )
    client.rest_client.pool_manager = urllib3.PoolManager(
        num_pools=4, maxsize=4, retries=False, timeout=urllib3.Timeout(*_timeout())
    )
    return client


def _token_api(client: ApiClient) -> TokenApi:
    token_api = TokenApi(client, settings.XERO_CLIENT_ID, settings.XERO_CLIENT_SECRET)
    # TokenApi hard-codes identity.xero.com as class attributes (notes §12.2); instance
    # attributes override them for this client only.
    base = settings.XERO_IDENTITY_BASE.rstrip("/")
    token_api.refresh_token_url = f"{base}/connect/token"
    token_api.revoke_token_url = f"{base}/connect/revocation"
    return token_api


def _body_json(exc: ApiException) -> Any:
    body = exc.body
    if not body:
        return None
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, TypeError):
        return None


def _header(exc_or_headers: Any, name: str) -> str | None:
    headers = exc_or_headers.headers if isinstance(exc_or_headers, ApiException) else exc_or_headers
    if not headers:
        return None
    value = headers.get(name)
    return str(value) if value is not None else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _validation_elements(body: Any) -> list[ElementErrors]:
    if not isinstance(body, dict):
        return []
    elements = []
    for index, element in enumerate(body.get("Elements") or []):
        messages = [
            str(error.get("Message"))
            for error in (element.get("ValidationErrors") or [])
            if isinstance(error, dict) and error.get("Message")
        ]
        if messages:
            elements.append(ElementErrors(index=index, messages=messages))
    return elements


def _translate(exc: BaseException, *, operation: str, wrote: bool) -> XeroError:
    """Map SDK and transport exceptions onto BMS's family. Never includes request headers."""
    if isinstance(exc, RateLimitException):
        problem = (_header(exc, "X-Rate-Limit-Problem") or "minute").lower()
        retry_after = float(_header(exc, "Retry-After") or 60)
        return XeroRateLimitError(
            f"Xero's {problem} rate limit was reached; BMS waits {int(retry_after)} s and "
            "carries on.",
            problem=problem,
            retry_at=time.time() + retry_after,
        )
    if isinstance(exc, HTTPStatusException):
        status = int(exc.status) if str(exc.status).isdigit() else 400
        body = _body_json(exc)
        if isinstance(body, dict) and body.get("error") == "invalid_grant":
            return XeroAuthError(
                "Xero refused the stored authorisation (invalid_grant): re-authorise the "
                "connection in Admin → Integrations.",
                detail={"status": 400, "error": "invalid_grant"},
            )
        if status in (401, 403):
            xero_detail = body.get("Detail") if isinstance(body, dict) else None
            return XeroAuthError(
                f"Xero answered {status} ({xero_detail or 'unauthorised'}): the organisation was "
                "disconnected or its authorisation revoked; re-authorise it in Admin → "
                "Integrations.",
                detail={"status": status, "xero_detail": xero_detail},
            )
        if isinstance(exc, NotFoundException):
            return XeroNotFoundError(
                f"Xero has no such record ({operation}).", status=404, detail={"status": 404}
            )
        if status >= 500:
            return XeroTransientError(
                f"Xero answered {status} to {operation}; BMS retries later.",
                outcome_unknown=wrote,
                retry_after=float(_header(exc, "Retry-After") or 0) or None,
                detail={"status": status, "body": body},
            )
        elements = _validation_elements(body)
        message = (
            "; ".join(m for element in elements for m in element.messages)
            or (body.get("Message") if isinstance(body, dict) else None)
            or f"Xero refused {operation} with HTTP {status}."
        )
        return XeroPermanentError(
            str(message), status=status, elements=elements, detail={"status": status, "body": body}
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        # A write that reached Xero may have been applied even though no reply came back.
        return XeroTransientError(
            f"No reply from Xero to {operation} ({type(exc).__name__}); BMS retries later.",
            outcome_unknown=wrote,
            detail={"exception": type(exc).__name__},
        )
    raise exc


# --- Identity ---------------------------------------------------------------------------------


def _token_set(raw: dict[str, Any]) -> TokenSet:
    scope = raw.get("scope") or []
    scopes = scope.split() if isinstance(scope, str) else list(scope)
    return TokenSet(
        access_token=raw["access_token"],
        refresh_token=raw["refresh_token"],
        expires_in=int(raw.get("expires_in") or 1800),
        scopes=scopes,
        id_token=raw.get("id_token"),
    )


def token_refresh(*, refresh_token: str, scopes: list[str]) -> TokenSet:
    """Exchange a refresh token for a new token set (Xero rotates the refresh token)."""
    client = _api_client()
    try:
        raw = _token_api(client).refresh_token(refresh_token, scopes)
    except BaseException as exc:  # noqa: BLE001 - translated, or re-raised by _translate
        raise _translate(exc, operation="token refresh", wrote=True) from None
    return _token_set(raw)


def token_revoke(*, refresh_token: str) -> None:
    """Revoke a token set; Xero removes every connection made with it."""
    client = _api_client()
    try:
        _token_api(client).revoke_token(refresh_token)
    except BaseException as exc:  # noqa: BLE001
        raise _translate(exc, operation="token revocation", wrote=True) from None


def _identity_api(access_token: str) -> IdentityApi:
    return IdentityApi(_api_client(access_token), base_url=settings.XERO_API_BASE.rstrip("/"))


def connections_list(*, access_token: str, auth_event_id: str | None = None) -> list[XeroTenant]:
    api = _identity_api(access_token)
    kwargs: dict[str, Any] = {"_request_timeout": _timeout()}
    if auth_event_id:
        kwargs["auth_event_id"] = auth_event_id
    try:
        rows = api.get_connections(**kwargs)
    except BaseException as exc:  # noqa: BLE001
        raise _translate(exc, operation="GET /connections", wrote=False) from None
    return [
        XeroTenant(
            connection_id=str(row.id),
            tenant_id=str(row.tenant_id),
            tenant_name=row.tenant_name or "",
            tenant_type=row.tenant_type or "",
            auth_event_id=str(row.auth_event_id or ""),
        )
        for row in rows
    ]


def connection_delete(*, access_token: str, connection_id: str) -> None:
    api = _identity_api(access_token)
    try:
        api.delete_connection(connection_id, _request_timeout=_timeout())
    except NotFoundException:
        return  # already gone on Xero's side: the outcome we wanted
    except BaseException as exc:  # noqa: BLE001
        raise _translate(exc, operation="DELETE /connections", wrote=True) from None


# --- Accounting -------------------------------------------------------------------------------


class XeroClient:
    """Accounting calls for one organisation, through the shared rate limiter."""

    def __init__(
        self,
        *,
        tenant_id: str,
        access_token: str,
        limiter: XeroRateLimiter | None,
        on_limits: Callable[[CallLimits], None] | None = None,
        on_error: Callable[[XeroError], None] | None = None,
        on_released: Callable[[float], None] | None = None,
        last_call_at: float | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self._api = AccountingApi(
            _api_client(access_token),
            base_url=settings.XERO_API_BASE.rstrip("/") + "/api.xro/2.0",
        )
        self._limiter = limiter
        self._on_limits = on_limits
        self._on_error = on_error
        self._on_released = on_released
        self._last_call_at = last_call_at
        self._reserved: tuple[Any, CallPermit] | None = None
        self.calls = 0

    def __repr__(self) -> str:
        return f"<XeroClient tenant={self.tenant_id}>"

    @contextmanager
    def reserved(self) -> Iterator[None]:
        """Take the rate limiter's place for the next call now, so that a refusal
        (XeroRateLimitError) comes before the caller builds and stores its request: a backlog
        meets the limiter hundreds of times a minute. The next call in the block uses the place;
        if none is made, it is released on leaving (and counts in the minute log as a call)."""
        if self._limiter is None or self._reserved is not None:
            yield
            return
        self._reserved = self._acquire()
        try:
            yield
        finally:
            if self._reserved is not None:
                held, self._reserved = self._reserved, None
                self._release(*held)

    @contextmanager
    def _permit(self) -> Iterator[None]:
        if self._limiter is None:
            yield
            return
        held = self._reserved or self._acquire()
        self._reserved = None
        try:
            yield
        finally:
            self._release(*held)

    def _acquire(self) -> tuple[Any, CallPermit]:
        assert self._limiter is not None
        try:
            permit_context = self._limiter.call(self.tenant_id, last_call_at=self._last_call_at)
            permit = permit_context.__enter__()
        except redis.RedisError as exc:
            # Without the shared limiter BMS cannot know Xero's budget: wait, never call blind.
            raise XeroTransientError(
                f"The rate limiter's Redis is unavailable ({type(exc).__name__}); BMS retries "
                "later rather than calling Xero without it.",
                detail={"exception": repr(exc)},
            ) from None
        except RateLimited as exc:
            raise XeroRateLimitError(
                f"BMS is pacing calls to this Xero organisation ({exc.reason} limit); it carries "
                "on by itself.",
                problem=exc.reason,
                retry_at=exc.retry_at,
            ) from None
        return permit_context, permit

    def _release(self, permit_context: Any, permit: CallPermit) -> None:
        permit_context.__exit__(None, None, None)
        # The limiter's durable memory of this organisation's latest call (kept in
        # PostgreSQL by the caller) is the release time on the limiter's own clock.
        if permit.released_at is not None:
            self._last_call_at = permit.released_at
            if self._on_released is not None:
                self._on_released(permit.released_at)

    def call(self, operation: str, method_name: str, *, wrote: bool, **kwargs: Any) -> Any:
        """Run one SDK accounting method; returns its deserialised result."""
        method = getattr(self._api, method_name)
        with self._permit():
            self.calls += 1
            try:
                data, _status, headers = method(
                    self.tenant_id,
                    _return_http_data_only=False,
                    _request_timeout=_timeout(),
                    **kwargs,
                )
            except BaseException as exc:  # noqa: BLE001 - translated, or re-raised
                error = _translate(exc, operation=operation, wrote=wrote)
                if isinstance(exc, ApiException):
                    self._record_limits(exc.headers)
                if isinstance(error, XeroRateLimitError) and self._limiter is not None:
                    try:
                        self._limiter.pause(
                            self.tenant_id,
                            seconds=max(error.retry_at - time.time(), 1.0),
                            problem=error.problem,
                        )
                    except redis.RedisError as redis_error:
                        # The durable copy (paused_until, via on_error) still holds the pause.
                        logger.warning("xero limiter pause not stored: %r", redis_error)
                logger.warning("xero %s for tenant %s failed: %s", operation, self.tenant_id,
                               error.message)  # fmt: skip
                if self._on_error is not None:
                    self._on_error(error)
                raise error from None
        self._record_limits(headers)
        return data

    def _record_limits(self, headers: Any) -> None:
        if not headers:
            return
        limits = CallLimits(
            day_remaining=_int_or_none(_header(headers, "X-DayLimit-Remaining")),
            minute_remaining=_int_or_none(_header(headers, "X-MinLimit-Remaining")),
            app_minute_remaining=_int_or_none(_header(headers, "X-AppMinLimit-Remaining")),
        )
        if self._limiter is not None:
            try:
                self._limiter.record_response(
                    self.tenant_id,
                    day_remaining=limits.day_remaining,
                    minute_remaining=limits.minute_remaining,
                    app_minute_remaining=limits.app_minute_remaining,
                )
            except redis.RedisError as redis_error:
                # Bookkeeping only: Xero has answered (and may have saved a record), so its
                # outcome must still be recorded; the next response refreshes the budget.
                logger.warning("xero limiter bookkeeping lost: %r", redis_error)
        if self._on_limits is not None:
            self._on_limits(limits)

    # Organisation, chart of accounts, tax rates --------------------------------------------------

    def organisation_get(self) -> Organisation:
        result = self.call("GET /Organisation", "get_organisations", wrote=False)
        org = result.organisations[0]
        return Organisation(
            name=org.name or "",
            base_currency=str(getattr(org.base_currency, "value", org.base_currency) or ""),
            short_code=org.short_code or "",
            timezone=str(getattr(org.timezone, "value", org.timezone) or ""),
            period_lock_date=org.period_lock_date,
        )

    def accounts_list(self) -> list[Account]:
        result = self.call("GET /Accounts", "get_accounts", wrote=False)
        return [
            Account(
                account_id=str(row.account_id),
                code=row.code or "",
                name=row.name or "",
                type=_enum(row.type),
                status=_enum(row.status),
                tax_type=row.tax_type or "",
                is_system_account=bool(row.system_account),
                enable_payments=bool(row.enable_payments_to_account),
                bank_account=_enum(row.type) == "BANK",
            )
            for row in result.accounts or []
        ]

    def currencies_list(self) -> list[str]:
        result = self.call("GET /Currencies", "get_currencies", wrote=False)
        return [_enum(row.code) for row in result.currencies or []]

    def tax_rates_list(self) -> list[TaxRate]:
        result = self.call("GET /TaxRates", "get_tax_rates", wrote=False)
        return [
            TaxRate(
                tax_type=row.tax_type or "",
                name=row.name or "",
                effective_rate=Decimal(str(row.effective_rate or 0)),
                status=_enum(row.status),
                can_apply_to_revenue=bool(row.can_apply_to_revenue),
            )
            for row in result.tax_rates or []
        ]

    # Manual journals --------------------------------------------------------------------------

    def manual_journal_create(
        self,
        *,
        narration: str,
        date: Any,
        lines: list[JournalLine],
        idempotency_key: str,
        status: str = "POSTED",
    ) -> ManualJournal:
        """PUT /ManualJournals with one journal; raises XeroPermanentError with Xero's messages."""
        body = SdkManualJournals(
            manual_journals=[
                SdkManualJournal(
                    narration=narration,
                    date=date,
                    status=status,
                    line_amount_types=LineAmountTypes.NOTAX,
                    show_on_cash_basis_reports=False,
                    journal_lines=[
                        SdkManualJournalLine(
                            line_amount=line.line_amount,
                            account_code=line.account_code,
                            description=line.description or narration,
                        )
                        for line in lines
                    ],
                )
            ]
        )
        result = self.call(
            "PUT /ManualJournals",
            "create_manual_journals",
            wrote=True,
            manual_journals=body,
            summarize_errors=False,
            idempotency_key=idempotency_key,
        )
        row = result.manual_journals[0]
        messages = [str(e.message) for e in (row.validation_errors or []) if e.message]
        if messages or _enum(row.status_attribute_string) == "ERROR":
            raise XeroPermanentError(
                "; ".join(messages) or "Xero refused the manual journal.",
                status=200,
                elements=[ElementErrors(index=0, messages=messages)],
                detail={"validation_errors": messages},
            )
        return _manual_journal(row)

    def manual_journals_find(self, *, narration_contains: str) -> list[ManualJournal]:
        """Journals whose narration contains the text. BMS puts its journal's identity there,
        because manual journals have no business key in Xero (reliability-notes.md §1.3)."""
        escaped = narration_contains.replace('"', '\\"')
        found: list[ManualJournal] = []
        page = 1
        while True:
            result = self.call(
                "GET /ManualJournals",
                "get_manual_journals",
                wrote=False,
                where=f'Narration.Contains("{escaped}")',
                page=page,
            )
            rows = result.manual_journals or []
            found += [_manual_journal(row) for row in rows]
            if len(rows) < 100:
                return found
            page += 1

    # Contacts ---------------------------------------------------------------------------------

    def contacts_create(
        self, *, contacts: list[ContactData], idempotency_key: str
    ) -> list[ContactResult]:
        """PUT /Contacts (create only: an existing name is an error, never a silent merge)."""
        result = self.call(
            "PUT /Contacts",
            "create_contacts",
            wrote=True,
            contacts=SdkContacts(contacts=[_sdk_contact(c) for c in contacts]),
            summarize_errors=False,
            idempotency_key=idempotency_key,
        )
        return [_contact_result(row) for row in result.contacts or []]

    def contacts_update(
        self, *, contacts: list[ContactData], idempotency_key: str
    ) -> list[ContactResult]:
        """POST /Contacts where every element carries its ContactID (update only)."""
        if any(not c.contact_id for c in contacts):
            raise ValueError("contacts_update needs a ContactID on every contact")
        result = self.call(
            "POST /Contacts",
            "update_or_create_contacts",
            wrote=True,
            contacts=SdkContacts(contacts=[_sdk_contact(c) for c in contacts]),
            summarize_errors=False,
            idempotency_key=idempotency_key,
        )
        return [_contact_result(row) for row in result.contacts or []]

    # Invoices and credit notes ----------------------------------------------------------------

    def invoices_create(
        self, *, invoices: list[DocumentData], idempotency_key: str
    ) -> list[DocumentResult]:
        """PUT /Invoices (create only: an existing ACCREC number is refused, never overwritten)."""
        result = self.call(
            "PUT /Invoices",
            "create_invoices",
            wrote=True,
            invoices=SdkInvoices(invoices=[_sdk_invoice(d) for d in invoices]),
            summarize_errors=False,
            unitdp=4,
            idempotency_key=idempotency_key,
        )
        return [_invoice_result(row) for row in result.invoices or []]

    def invoices_update(
        self, *, invoices: list[DocumentData], idempotency_key: str
    ) -> list[DocumentResult]:
        """POST /Invoices where every element carries its InvoiceID (update only)."""
        if any(not d.xero_id for d in invoices):
            raise ValueError("invoices_update needs an InvoiceID on every invoice")
        result = self.call(
            "POST /Invoices",
            "update_or_create_invoices",
            wrote=True,
            invoices=SdkInvoices(invoices=[_sdk_invoice(d) for d in invoices]),
            summarize_errors=False,
            unitdp=4,
            idempotency_key=idempotency_key,
        )
        return [_invoice_result(row) for row in result.invoices or []]

    def credit_notes_create(
        self, *, credit_notes: list[DocumentData], idempotency_key: str
    ) -> list[DocumentResult]:
        result = self.call(
            "PUT /CreditNotes",
            "create_credit_notes",
            wrote=True,
            credit_notes=SdkCreditNotes(credit_notes=[_sdk_credit_note(d) for d in credit_notes]),
            summarize_errors=False,
            unitdp=4,
            idempotency_key=idempotency_key,
        )
        return [_credit_note_result(row) for row in result.credit_notes or []]

    def credit_notes_get(self, *, where: str) -> list[DocumentResult]:
        result = self.call("GET /CreditNotes", "get_credit_notes", wrote=False, where=where)
        return [_credit_note_result(row) for row in result.credit_notes or []]

    def credit_note_allocate(
        self,
        *,
        credit_note_id: str,
        invoice_id: str,
        amount: Decimal,
        date: Any,
        idempotency_key: str,
    ) -> None:
        result = self.call(
            "PUT /CreditNotes/{id}/Allocations",
            "create_credit_note_allocation",
            wrote=True,
            credit_note_id=credit_note_id,
            allocations=SdkAllocations(
                allocations=[
                    SdkAllocation(
                        invoice=SdkInvoice(invoice_id=invoice_id), amount=amount, date=date
                    )
                ]
            ),
            summarize_errors=False,
            idempotency_key=idempotency_key,
        )
        rows = result.allocations or []
        errors = [
            str(e.message) for row in rows for e in (row.validation_errors or []) if e.message
        ]
        if errors:
            raise XeroPermanentError(
                "; ".join(errors), status=200,
                elements=[ElementErrors(index=0, messages=errors)],
                detail={"validation_errors": errors},
            )  # fmt: skip

    # Payments ---------------------------------------------------------------------------------

    def payment_create(
        self,
        *,
        invoice_id: str,
        account_code: str,
        amount: Decimal,
        date: Any,
        reference: str,
        idempotency_key: str,
    ) -> XeroPaymentRecord:
        """PUT /Payments for one payment against an ACCREC invoice."""
        result = self.call(
            # xero-python's create_payment sends POST /Payments (not PUT).
            "POST /Payments",
            "create_payment",
            wrote=True,
            payment=SdkPayment(
                invoice=SdkInvoice(invoice_id=invoice_id),
                account=SdkAccount(code=account_code),
                amount=amount,
                date=date,
                reference=reference or None,
            ),
            idempotency_key=idempotency_key,
        )
        row = result.payments[0]
        errors = [str(e.message) for e in (row.validation_errors or []) if e.message]
        if errors:
            raise XeroPermanentError(
                "; ".join(errors), status=200,
                elements=[ElementErrors(index=0, messages=errors)],
                detail={"validation_errors": errors},
            )  # fmt: skip
        return _payment_record(row)

    # Reads of contacts, invoices and payments ------------------------------------------------

    def contacts_get(
        self,
        *,
        ids: list[str] | None = None,
        where: str | None = None,
        include_archived: bool = False,
        page: int | None = None,
        page_size: int | None = None,
        if_modified_since: datetime | None = None,
    ) -> list[XeroContactRecord]:
        kwargs = _present(
            i_ds=ids, where=where, page=page, page_size=page_size,
            if_modified_since=if_modified_since,
        )  # fmt: skip
        if include_archived:
            kwargs["include_archived"] = True
        result = self.call("GET /Contacts", "get_contacts", wrote=False, **kwargs)
        return [_contact_record(row) for row in result.contacts or []]

    def invoices_get(
        self,
        *,
        ids: list[str] | None = None,
        invoice_numbers: list[str] | None = None,
        statuses: list[str] | None = None,
        page: int | None = None,
        page_size: int | None = None,
        if_modified_since: datetime | None = None,
    ) -> list[XeroInvoiceRecord]:
        kwargs = _present(
            i_ds=ids, invoice_numbers=invoice_numbers, statuses=statuses, page=page,
            page_size=page_size, if_modified_since=if_modified_since,
        )  # fmt: skip
        result = self.call("GET /Invoices", "get_invoices", wrote=False, **kwargs)
        return [_invoice_record(row) for row in result.invoices or []]

    def payments_get(
        self,
        *,
        page: int = 1,
        page_size: int | None = None,
        if_modified_since: datetime | None = None,
        where: str | None = None,
        order: str | None = None,
    ) -> list[XeroPaymentRecord]:
        kwargs = _present(
            page=page,
            page_size=page_size,
            if_modified_since=if_modified_since,
            where=where,
            order=order,
        )
        result = self.call("GET /Payments", "get_payments", wrote=False, **kwargs)
        return [_payment_record(row) for row in result.payments or []]


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _manual_journal(row: Any) -> ManualJournal:
    return ManualJournal(
        manual_journal_id=str(row.manual_journal_id or ""),
        narration=row.narration or "",
        date=row.date,
        status=_enum(row.status),
        lines=[
            JournalLine(
                account_code=line.account_code or "",
                line_amount=Decimal(str(line.line_amount or 0)),
                description=line.description or "",
            )
            for line in row.journal_lines or []
        ],
        warnings=[str(w.message) for w in (row.warnings or []) if getattr(w, "message", None)],
    )


def _present(**kwargs: Any) -> dict[str, Any]:
    """Only the parameters that were given: the SDK sends every keyword it receives."""
    return {key: value for key, value in kwargs.items() if value is not None}


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal("0.00")


def _contact_record(row: Any) -> XeroContactRecord:
    return XeroContactRecord(
        contact_id=str(row.contact_id or ""),
        name=row.name or "",
        contact_number=row.contact_number or "",
        status=_enum(row.contact_status),
        email=row.email_address or "",
        tax_number=row.tax_number or "",
        updated_at=row.updated_date_utc,
        is_customer=bool(row.is_customer),
        is_supplier=bool(row.is_supplier),
    )


def _invoice_record(row: Any) -> XeroInvoiceRecord:
    return XeroInvoiceRecord(
        invoice_id=str(row.invoice_id or ""),
        invoice_number=row.invoice_number or "",
        status=_enum(row.status),
        contact_id=str(row.contact.contact_id) if row.contact and row.contact.contact_id else "",
        currency=_enum(row.currency_code),
        sub_total=_money(row.sub_total),
        total_tax=_money(row.total_tax),
        total=_money(row.total),
        amount_paid=_money(row.amount_paid),
        amount_credited=_money(row.amount_credited),
        amount_due=_money(row.amount_due),
        updated_at=row.updated_date_utc,
    )


def _payment_record(row: Any) -> XeroPaymentRecord:
    invoice = row.invoice
    return XeroPaymentRecord(
        payment_id=str(row.payment_id or ""),
        invoice_id=str(invoice.invoice_id) if invoice and invoice.invoice_id else "",
        invoice_number=(invoice.invoice_number if invoice else "") or "",
        amount=_money(row.amount),
        date=row.date,
        status=_enum(row.status),
        reference=row.reference or "",
        updated_at=row.updated_date_utc,
    )


def _sdk_address(kind: str, address: AddressData) -> SdkAddress:
    return SdkAddress(
        address_type=kind,
        address_line1=address.line1 or None,
        address_line2=address.line2 or None,
        city=address.city or None,
        region=address.region or None,
        postal_code=address.postal_code or None,
        country=address.country or None,
    )


def _sdk_contact(data: ContactData) -> SdkContact:
    addresses = []
    if data.street is not None:
        addresses.append(_sdk_address("STREET", data.street))
    if data.postal is not None:
        addresses.append(_sdk_address("POBOX", data.postal))
    terms = None
    if data.terms_type:
        terms = SdkPaymentTerm(
            sales=SdkBill(day=data.terms_day or 0, type=PaymentTermType(data.terms_type))
        )
    return SdkContact(
        contact_id=data.contact_id or None,
        name=data.name,
        contact_number=data.contact_number or None,
        email_address=data.email or None,
        tax_number=data.tax_number or None,
        account_number=data.account_number or None,
        default_currency=CurrencyCode(data.currency) if data.currency else None,
        phones=[SdkPhone(phone_type="DEFAULT", phone_number=data.phone)] if data.phone else None,
        addresses=addresses or None,
        payment_terms=terms,
    )


def _contact_result(row: Any) -> ContactResult:
    contact_id = str(row.contact_id) if row.contact_id else None
    errors = [str(e.message) for e in (row.validation_errors or []) if e.message]
    return ContactResult(
        contact_id=None if contact_id in (None, ZERO_GUID) or errors else contact_id,
        name=row.name or "",
        contact_number=row.contact_number or "",
        status=_enum(row.contact_status),
        errors=errors,
    )


def _sdk_line(line: LineData) -> SdkLineItem:
    return SdkLineItem(
        description=line.description,
        quantity=line.quantity,
        unit_amount=line.unit_amount,
        account_code=line.account_code,
        tax_type=line.tax_type,
        discount_rate=line.discount_rate if line.discount_rate else None,
    )


def _date(value: str | None) -> Any:
    return date_cls.fromisoformat(value) if value else None


def _sdk_invoice(data: DocumentData) -> SdkInvoice:
    return SdkInvoice(
        type="ACCREC",
        invoice_id=data.xero_id or None,
        contact=SdkContact(contact_id=data.contact_id),
        invoice_number=data.number,
        reference=data.reference or None,
        date=_date(data.date),
        due_date=_date(data.due_date),
        currency_code=CurrencyCode(data.currency),
        line_amount_types=LineAmountTypes(data.line_amount_type),
        status=data.status,
        line_items=[_sdk_line(line) for line in data.lines],
    )


def _sdk_credit_note(data: DocumentData) -> SdkCreditNote:
    return SdkCreditNote(
        type="ACCRECCREDIT",
        credit_note_id=data.xero_id or None,
        contact=SdkContact(contact_id=data.contact_id),
        credit_note_number=data.number,
        reference=data.reference or None,
        date=_date(data.date),
        currency_code=CurrencyCode(data.currency),
        line_amount_types=LineAmountTypes(data.line_amount_type),
        status=data.status,
        line_items=[_sdk_line(line) for line in data.lines],
    )


def _document_result(xero_id: Any, number: str | None, row: Any) -> DocumentResult:
    errors = [str(e.message) for e in (row.validation_errors or []) if e.message]
    ident = str(xero_id) if xero_id else None
    return DocumentResult(
        xero_id=None if ident in (None, ZERO_GUID) or errors else ident,
        number=number or "",
        status=_enum(row.status),
        total=_money(row.total),
        amount_due=_money(
            getattr(row, "amount_due", None) or getattr(row, "remaining_credit", None)
        ),
        errors=errors,
    )


def _invoice_result(row: Any) -> DocumentResult:
    return _document_result(row.invoice_id, row.invoice_number, row)


def _credit_note_result(row: Any) -> DocumentResult:
    return _document_result(row.credit_note_id, row.credit_note_number, row)
