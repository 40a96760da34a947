from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction

from core.models import AccountingPackage, GeneralSettings


def general_settings_update(
    *, accounting_package: str, user: AbstractBaseUser | AnonymousUser | None
) -> GeneralSettings:
    if accounting_package not in AccountingPackage.values:
        raise ValidationError(
            {
                "accounting_package": (
                    f"'{accounting_package}' is not an accounting package BMS supports; choose one "
                    "of "
                    f"{', '.join(AccountingPackage.values)}."
                )
            }
        )
    with transaction.atomic():
        row, _ = GeneralSettings.objects.select_for_update().get_or_create(pk=1)
        row.accounting_package = accounting_package
        row.updated_by = user if user is not None and user.is_authenticated else None  # type: ignore[assignment]
        row.save()
    return row
