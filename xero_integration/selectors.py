from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from billing.models import Account, Entity, TaxRate
from xero_integration.models import XeroAccount, XeroConnection, XeroEntityLink, XeroTaxRate


def entity_list_with_connections() -> QuerySet[Entity]:
    return Entity.objects.select_related(
        "xero_link__connection__authorisation"
    ).order_by("name")


def connection_list() -> QuerySet[XeroConnection]:
    return XeroConnection.objects.select_related("authorisation").prefetch_related(
        Prefetch("entity_links", queryset=XeroEntityLink.objects.select_related("entity"))
    )


@dataclass(frozen=True)
class AccountMatch:
    account: Account
    xero_account: XeroAccount | None
    status: str  # matched, missing, archived, type_mismatch

    @property
    def label(self) -> str:
        return {
            "matched": "Matched",
            "missing": "Missing in Xero",
            "archived": "Archived in Xero",
            "type_mismatch": "Type mismatch",
        }[self.status]


def account_matches(*, entity: Entity) -> list[AccountMatch]:
    """BMS accounts beside the organisation's, as last pulled, with a match status each."""
    link = XeroEntityLink.objects.filter(entity=entity).first()
    xero_by_code: dict[str, XeroAccount] = {}
    if link is not None:
        xero_by_code = {
            account.code: account
            for account in XeroAccount.objects.filter(connection__tenant_id=link.tenant_id)
        }
    matches = []
    for account in Account.objects.filter(entity=entity).order_by("code"):
        found = xero_by_code.get(account.code)
        if found is None:
            status = "missing"
        elif found.status != "ACTIVE":
            status = "archived"
        elif found.type != account.type:
            status = "type_mismatch"
        else:
            status = "matched"
        matches.append(AccountMatch(account=account, xero_account=found, status=status))
    return matches


def tax_rate_choices(*, entity: Entity) -> list[XeroTaxRate]:
    link = XeroEntityLink.objects.filter(entity=entity).first()
    if link is None:
        return []
    return list(
        XeroTaxRate.objects.filter(connection__tenant_id=link.tenant_id, status="ACTIVE").order_by(
            "name"
        )
    )


def tax_rates_for_mapping(*, entity: Entity) -> QuerySet[TaxRate]:
    return TaxRate.objects.filter(entity=entity).order_by("name")
