from django.conf import settings
from django.db import models


class AccountingPackage(models.TextChoices):
    XERO = "xero", "Xero"
    QUICKBOOKS = "quickbooks", "QuickBooks"
    BMS = "bms", "BMS (no external package)"
    NONE = "none", "None"


class GeneralSettings(models.Model):
    """A single row (pk=1) of company-wide settings, edited in Admin → General Settings."""

    accounting_package = models.CharField(
        max_length=20, choices=AccountingPackage.choices, default=AccountingPackage.XERO
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "general settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="general_settings_singleton"),
        ]

    def __str__(self) -> str:
        return f"General settings ({self.get_accounting_package_display()})"
