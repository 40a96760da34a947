from typing import Any

from django.core.checks import CheckMessage, Warning, register
from django.db import DatabaseError


@register()
def xero_configuration_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With `xero` selected in General Settings, say in one message which settings are missing."""
    from core.selectors import xero_is_enabled  # noqa: PLC0415 - needs the app registry ready
    from xero_integration.services import xero_configuration_missing  # noqa: PLC0415

    missing = xero_configuration_missing()
    if not missing:
        return []
    try:
        enabled = xero_is_enabled()
    except DatabaseError:
        return []  # not migrated yet: nothing is selected
    if not enabled:
        return []
    # A warning, not an error: it must not stop migrate or other commands (an admin may be about
    # to pick another package), but every start prints it.
    return [
        Warning(
            f"Xero is the selected accounting package but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set.",
            hint="Set them in the environment (see .env.example), or pick another accounting "
            "package in Admin → General Settings.",
            id="xero_integration.W001",
        )
    ]
