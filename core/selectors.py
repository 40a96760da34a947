from core.models import AccountingPackage, GeneralSettings


def general_settings_get() -> GeneralSettings:
    settings_row, _ = GeneralSettings.objects.get_or_create(pk=1)
    return settings_row


def xero_is_enabled() -> bool:
    return general_settings_get().accounting_package == AccountingPackage.XERO
