"""Two roles: staff (billing clerks) use Billing; admins also use Admin.

Staff are active users with is_staff; admins are superusers or members of the "BMS admins" group.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

ADMIN_GROUP = "BMS admins"


def user_is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    groups = getattr(user, "groups", None)
    return groups is not None and bool(groups.filter(name=ADMIN_GROUP).exists())


def user_is_staff(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return bool(getattr(user, "is_staff", False)) or user_is_admin(user)


View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_staff(request.user):
            raise PermissionDenied("Billing is for BMS staff.")
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_admin(request.user):
            raise PermissionDenied("Only BMS admins can use the Admin pages.")
        return view(request, *args, **kwargs)

    return wrapper
