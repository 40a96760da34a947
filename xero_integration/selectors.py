from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, Model, OuterRef, Prefetch, Q, QuerySet
from django.urls import reverse

from billing.models import Account, Customer, Entity, TaxRate
from xero_integration.contact_sync import customer_snapshot
from xero_integration.models import (
    XeroAccount,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
    XeroTaxRate,
)


def entity_list_with_connections() -> QuerySet[Entity]:
    return Entity.objects.select_related("xero_link__connection__authorisation").order_by("name")


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


@dataclass(frozen=True)
class SyncRow:
    """The list-page columns of one record: status, Accounting Code (the Xero identifier, empty
    when not synced), Last Accounting Export / Import dates."""

    colour: str
    xero_id: str
    last_export: Any
    last_import: Any


def sync_rows_attach(*, objects: Sequence[Model]) -> None:
    """Attach `.xero_sync` to each record of one list page with a single query."""
    if not objects:
        return
    content_type = ContentType.objects.get_for_model(type(objects[0]))
    links = {
        link.object_id: link
        for link in XeroRecordLink.objects.filter(
            content_type=content_type, object_id__in=[obj.pk for obj in objects]
        )
    }
    for obj in objects:
        link = links.get(obj.pk)
        if link is None:
            row = SyncRow(colour="grey", xero_id="", last_export=None, last_import=None)
        else:
            changed = (
                link.pushed_version != getattr(obj, "version", link.pushed_version)
                if not isinstance(obj, Customer)
                else bool(link.pushed_snapshot) and link.pushed_snapshot != customer_snapshot(obj)
            )
            row = SyncRow(
                colour="red" if changed else "blue",
                xero_id=link.xero_id,
                last_export=link.last_pushed_at,
                last_import=link.last_pulled_at,
            )
        obj.xero_sync = row  # type: ignore[attr-defined]


def queryset_filter_synced(queryset: QuerySet[Any], synced: str) -> QuerySet[Any]:
    """ "yes": only records linked to Xero; "no": only records never synced."""
    if synced not in ("yes", "no"):
        return queryset
    linked = XeroRecordLink.objects.filter(
        content_type=ContentType.objects.get_for_model(queryset.model), object_id=OuterRef("pk")
    )
    return queryset.filter(Exists(linked)) if synced == "yes" else queryset.filter(~Exists(linked))


def connection_banner_for_user(*, user: Any) -> dict[str, str] | None:
    """A banner for everyone while an organisation needs re-authorising (Xero-side disconnect,
    revoked or expired refresh token) or its scheduled token refresh failed: its jobs are paused
    until an admin acts."""
    from core.selectors import xero_is_enabled  # noqa: PLC0415 - core imports this module's app

    if not xero_is_enabled():
        return None
    rows = list(
        XeroConnection.objects.filter(
            Q(status__in=["needs_reauth", "error"])
            | Q(status="connected", authorisation__last_refresh_error__gt="")
        ).values_list("tenant_name", "status")[:4]
    )
    if not rows:
        return None
    broken = [name for name, status in rows if status != "connected"]
    names = ", ".join(broken)
    text = (
        f"Xero needs re-authorising for {names}: syncing is paused until an admin re-authorises it"
        if broken
        else "A scheduled Xero token refresh failed: check Admin → Integrations"
    )
    return {
        "text": text,
        "url": reverse("xero_integration:integrations"),
        "link_text": "Open Integrations",
    }
