from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path


def _superusers_only(request: HttpRequest) -> bool:
    # Django's admin site is a maintenance tool; billing staff (is_staff) use BMS's own pages.
    return bool(request.user.is_active and request.user.is_superuser)


admin.site.has_permission = _superusers_only  # type: ignore[method-assign]


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", lambda request: redirect("billing:invoice_list"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("billing/", include("billing.urls")),
    path("admin/", include("core.urls")),
    path("admin/jobs/", include("admin_jobs.urls")),
    path("admin/journals/", include("journals.urls")),
    path("xero/", include("xero_integration.urls")),
    path("django-admin/", admin.site.urls),
]
