from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from core.permissions import user_is_admin, user_is_staff
from core.selectors import xero_is_enabled


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Apps contribute banners (e.g. unresolved Xero sync errors) through providers named in
    # settings, so the base template never queries their tables itself.
    banners = []
    for dotted in settings.BMS_BANNER_PROVIDERS:
        banner = import_string(dotted)(user=user)
        if banner:
            banners.append(banner)
    return {
        "nav_is_admin": user_is_admin(user),
        "nav_is_staff": user_is_staff(user),
        "nav_xero_enabled": xero_is_enabled(),
        "banners": banners,
    }
