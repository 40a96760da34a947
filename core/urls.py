from django.urls import path

from core import views

app_name = "core"
urlpatterns = [
    path("settings/", views.general_settings_view, name="general_settings"),
    path("accounts/", views.account_list_view, name="accounts"),
]
