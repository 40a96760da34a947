"""Organisations, apps and users, including the BMS demo seed (`--seed demo`).

Demo identifiers are deterministic (uuid5) so a BMS configuration survives sandbox restarts.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .clock import Clock
from .state import State, empty_data, new_id

NAMESPACE = uuid.UUID("6f1c7f8e-6c5b-4d0e-9a3e-5a9d8b0c1a10")

DEMO_CLIENT_ID = "BMS-DEMO-CLIENT"
DEMO_CLIENT_SECRET = "bms-demo-secret"  # noqa: S105 - a public sandbox credential
DEMO_WEBHOOK_KEY = "bms-demo-webhook-key"
DEMO_WEBHOOK_URL = "http://127.0.0.1:8000/xero/webhooks/"
DEMO_REDIRECT_URIS = [
    "http://127.0.0.1:8000/xero/callback/",
    "http://localhost:8000/xero/callback/",
]
DEMO_USER_EMAIL = "demo@kiwicoffee.example"


def stable_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


DEMO_USER_ID = stable_id("user/demo")
DEMO_NZ_TENANT_ID = stable_id("org/kiwi-coffee-roasters-nz")
DEMO_UK_TENANT_ID = stable_id("org/kiwi-coffee-roasters-uk")

# IANA zone -> the spec's TimeZone enum (xero-python rejects values outside the enum).
XERO_TIMEZONES = {
    "Pacific/Auckland": "NEWZEALANDSTANDARDTIME",
    "Europe/London": "GMTSTANDARDTIME",
    "Australia/Sydney": "AUSEASTERNSTANDARDTIME",
    "UTC": "UTC",
}

ACCOUNT_CLASSES = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "OTHERINCOME": "REVENUE",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
}


def make_account(
    code: str,
    name: str,
    acc_type: str,
    tax_type: str,
    *,
    now: datetime,
    currency: str,
    status: str = "ACTIVE",
    system: str | None = None,
    payments: bool = False,
    description: str = "",
) -> dict[str, Any]:
    account: dict[str, Any] = {
        "AccountID": new_id(),
        "Code": code,
        "Name": name,
        "Type": acc_type,
        "Status": status,
        "Description": description,
        "Class": ACCOUNT_CLASSES[acc_type],
        "TaxType": tax_type,
        "EnablePaymentsToAccount": payments,
        "ShowInExpenseClaims": False,
        "BankAccountType": "BANK" if acc_type == "BANK" else "",
        "ReportingCode": "",
        "HasAttachments": False,
        "AddToWatchlist": False,
        "UpdatedDateUTC": now,
    }
    if acc_type == "BANK":
        account["BankAccountNumber"] = "0201000123456700"
        account["CurrencyCode"] = currency
    if system:
        account["SystemAccount"] = system
    return account


def make_tax_rate(
    name: str,
    tax_type: str,
    rate: str,
    report: str,
    *,
    revenue: bool,
    expenses: bool,
    component: str,
) -> dict[str, Any]:
    value = Decimal(rate)
    return {
        "Name": name,
        "TaxType": tax_type,
        "TaxComponents": [
            {"Name": component, "Rate": value, "IsCompound": False, "IsNonRecoverable": False}
        ],
        "Status": "ACTIVE",
        "ReportTaxType": report,
        "CanApplyToAssets": True,
        "CanApplyToEquity": True,
        "CanApplyToExpenses": expenses,
        "CanApplyToLiabilities": True,
        "CanApplyToRevenue": revenue,
        "DisplayTaxRate": value,
        "EffectiveRate": value,
    }


def standard_chart(
    now: datetime, currency: str, sales_tax: str, purchase_tax: str, no_tax: str
) -> list[dict[str, Any]]:
    """Xero's default chart codes used by BMS (issue: demo seed)."""

    def acc(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return make_account(*args, now=now, currency=currency, **kwargs)

    return [
        acc("090", "Business Bank Account", "BANK", no_tax, payments=True),
        acc("200", "Sales", "REVENUE", sales_tax),
        acc("260", "Other Revenue", "REVENUE", sales_tax),
        acc("299", "Old Sales", "REVENUE", sales_tax, status="ARCHIVED"),
        acc("310", "Cost of Goods Sold", "DIRECTCOSTS", purchase_tax),
        acc("400", "Advertising", "EXPENSE", purchase_tax),
        acc("610", "Accounts Receivable", "CURRENT", no_tax, system="DEBTORS"),
        acc("620", "Prepayments", "CURRENT", no_tax),
        acc("630", "Inventory", "INVENTORY", no_tax, description="Tracked inventory"),
        acc("640", "Stock on Hand", "CURRENT", no_tax, description="Non-tracked stock"),
        acc("800", "Accounts Payable", "CURRLIAB", no_tax, system="CREDITORS"),
        acc("820", "GST" if currency == "NZD" else "VAT", "CURRLIAB", no_tax, system="GST"),
        acc("960", "Retained Earnings", "EQUITY", no_tax, system="RETAINEDEARNINGS"),
    ]


def nz_tax_rates() -> list[dict[str, Any]]:
    return [
        make_tax_rate(
            "15% GST on Income",
            "OUTPUT2",
            "15.0000",
            "OUTPUT",
            revenue=True,
            expenses=False,
            component="GST",
        ),
        make_tax_rate(
            "GST on Expenses",
            "INPUT2",
            "15.0000",
            "INPUT",
            revenue=False,
            expenses=True,
            component="GST",
        ),
        make_tax_rate(
            "No GST", "NONE", "0.0000", "NONE", revenue=True, expenses=True, component="GST"
        ),
        make_tax_rate(
            "Zero Rated",
            "ZERORATED",
            "0.0000",
            "OUTPUT",
            revenue=True,
            expenses=True,
            component="GST",
        ),
    ]


def uk_tax_rates() -> list[dict[str, Any]]:
    return [
        make_tax_rate(
            "20% (VAT on Income)",
            "OUTPUT2",
            "20.0000",
            "OUTPUT",
            revenue=True,
            expenses=False,
            component="VAT",
        ),
        make_tax_rate(
            "5% (VAT on Income)",
            "RROUTPUT",
            "5.0000",
            "OUTPUT",
            revenue=True,
            expenses=False,
            component="VAT",
        ),
        make_tax_rate(
            "Zero Rated Income",
            "ZERORATEDOUTPUT",
            "0.0000",
            "ZERORATEDOUTPUT",
            revenue=True,
            expenses=False,
            component="VAT",
        ),
        make_tax_rate(
            "No VAT", "NONE", "0.0000", "NONE", revenue=True, expenses=True, component="VAT"
        ),
        # Not in the list, added so expense accounts have a realistic default rate.
        make_tax_rate(
            "20% (VAT on Expenses)",
            "INPUT2",
            "20.0000",
            "INPUT",
            revenue=False,
            expenses=True,
            component="VAT",
        ),
    ]


def build_org(
    *,
    name: str,
    now: datetime,
    base_currency: str = "NZD",
    timezone: str = "Pacific/Auckland",
    country: str = "NZ",
    tenant_id: str | None = None,
    currencies: list[str] | None = None,
    tax_rates: list[dict[str, Any]] | None = None,
    accounts: list[dict[str, Any]] | None = None,
    period_lock_date: date | None = None,
    short_code: str | None = None,
) -> dict[str, Any]:
    """A complete organisation; defaults give a NZ company with the standard chart."""
    tenant_id = tenant_id or new_id()
    uk = country == "GB"
    rates = tax_rates if tax_rates is not None else (uk_tax_rates() if uk else nz_tax_rates())
    if accounts is None:
        accounts = standard_chart(now, base_currency, "OUTPUT2", "INPUT2", "NONE")
    organisation: dict[str, Any] = {
        "OrganisationID": tenant_id,
        "APIKey": "",
        "Name": name,
        "LegalName": name,
        "PaysTax": True,
        "Version": "UK" if uk else ("NZ" if country == "NZ" else "GLOBAL"),
        "OrganisationType": "COMPANY",
        "OrganisationEntityType": "COMPANY",
        "BaseCurrency": base_currency,
        "CountryCode": country,
        "IsDemoCompany": False,
        "OrganisationStatus": "ACTIVE",
        "TaxNumber": "",
        "FinancialYearEndDay": 31,
        "FinancialYearEndMonth": 3,
        "SalesTaxBasis": "ACCRUALS" if uk else "INVOICE",
        "SalesTaxPeriod": "QUARTERLY1" if uk else "TWOMONTHS",
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Inclusive",
        "CreatedDateUTC": now,
        "Timezone": XERO_TIMEZONES.get(timezone, "UTC"),
        "ShortCode": short_code or ("!" + tenant_id[:5]),
        "Class": "STANDARD",
        "Edition": "BUSINESS",
        "LineOfBusiness": "Coffee roasting",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }
    return {
        "tenant_id": tenant_id,
        "timezone": timezone,
        "period_lock_date": period_lock_date,
        "organisation": organisation,
        "currencies": currencies or [base_currency],
        "accounts": {a["AccountID"]: a for a in accounts},
        "tax_rates": {r["TaxType"]: r for r in rates},
        "contacts": {},
        "invoices": {},
        "payments": {},
        "credit_notes": {},
        "manual_journals": {},
    }


CURRENCY_NAMES = {
    "NZD": "New Zealand Dollar",
    "GBP": "British Pound",
    "AUD": "Australian Dollar",
    "USD": "United States Dollar",
    "EUR": "Euro",
}


def make_app(
    client_id: str,
    client_secret: str,
    *,
    name: str,
    redirect_uris: list[str],
    webhook_url: str | None = None,
    webhook_key: str | None = None,
    auto_approve: bool = False,
) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_secret": client_secret,
        "name": name,
        "redirect_uris": list(redirect_uris),
        "webhook_url": webhook_url,
        "webhook_key": webhook_key or new_id().replace("-", ""),
        "auto_approve": auto_approve,
        "auto_approve_tenants": None,
    }


def make_user(user_id: str, email: str, name: str, tenant_ids: list[str]) -> dict[str, Any]:
    first, _, last = name.partition(" ")
    return {
        "user_id": user_id,
        "email": email,
        "first_name": first,
        "last_name": last,
        "tenant_ids": list(tenant_ids),
    }


def demo_data(
    now: datetime,
    *,
    webhook_url: str | None = DEMO_WEBHOOK_URL,
    redirect_uris: list[str] | None = None,
) -> dict[str, Any]:
    """A fresh state tree with the BMS demo app, user and two organisations."""
    data = empty_data()
    nz = build_org(
        name="Kiwi Coffee Roasters Ltd",
        now=now,
        base_currency="NZD",
        timezone="Pacific/Auckland",
        country="NZ",
        tenant_id=DEMO_NZ_TENANT_ID,
        currencies=["NZD", "AUD", "USD"],
        short_code="!kcrnz",
    )
    uk = build_org(
        name="Kiwi Coffee Roasters UK Ltd",
        now=now,
        base_currency="GBP",
        timezone="Europe/London",
        country="GB",
        tenant_id=DEMO_UK_TENANT_ID,
        currencies=["GBP", "USD"],
        short_code="!kcruk",
        accounts=standard_chart(now, "GBP", "OUTPUT2", "INPUT2", "NONE"),
    )
    data["orgs"] = {nz["tenant_id"]: nz, uk["tenant_id"]: uk}
    app = make_app(
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        name="BMS Demo",
        redirect_uris=redirect_uris or DEMO_REDIRECT_URIS,
        webhook_url=webhook_url,
        webhook_key=DEMO_WEBHOOK_KEY,
    )
    data["apps"] = {app["client_id"]: app}
    user = make_user(
        DEMO_USER_ID, DEMO_USER_EMAIL, "Demo User", [DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID]
    )
    data["users"] = {user["user_id"]: user}
    data["settings"]["default_user_id"] = DEMO_USER_ID
    return data


def empty_seed(now: datetime) -> dict[str, Any]:
    del now
    return empty_data()


SEEDS = {"demo": demo_data, "empty": empty_seed}


def demo_state(clock: Clock | None = None, **options: Any) -> State:
    """A fresh in-memory State holding the demo seed (no HTTP server)."""
    clock = clock or Clock()
    return State(clock, demo_data(clock.now(), **options))
