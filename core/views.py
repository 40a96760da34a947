from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing.selectors import account_list_for_admin
from core.models import AccountingPackage
from core.permissions import admin_required
from core.selectors import general_settings_get
from core.services import general_settings_update


class GeneralSettingsForm(forms.Form):
    accounting_package = forms.ChoiceField(choices=AccountingPackage.choices)


@require_http_methods(["GET", "POST"])
@admin_required
def general_settings_view(request: HttpRequest) -> HttpResponse:
    current = general_settings_get()
    form = GeneralSettingsForm(
        request.POST or None, initial={"accounting_package": current.accounting_package}
    )
    if request.method == "POST" and form.is_valid():
        try:
            general_settings_update(
                accounting_package=form.cleaned_data["accounting_package"], user=request.user
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, "General settings saved.")
            return redirect("core:general_settings")
    return render(request, "core/general_settings.html", {"form": form, "current": current})


@require_http_methods(["GET"])
@admin_required
def account_list_view(request: HttpRequest) -> HttpResponse:
    return render(request, "core/accounts.html", {"entities": account_list_for_admin()})
