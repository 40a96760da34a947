from django.db.models import Prefetch, QuerySet

from billing.models import Account, Entity, TaxRate


def account_list_for_admin() -> QuerySet[Entity]:
    return Entity.objects.prefetch_related(
        Prefetch("accounts", queryset=Account.objects.order_by("code")),
        Prefetch("tax_rates", queryset=TaxRate.objects.order_by("name")),
    ).order_by("name")
