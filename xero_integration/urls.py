from django.urls import path

from xero_integration import views

app_name = "xero_integration"
urlpatterns = [
    path("integrations/", views.integrations, name="integrations"),
    path("connect/<int:entity_id>/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("choose/", views.choose, name="choose"),
    path("entities/<int:entity_id>/link/", views.link_existing, name="link_existing"),
    path("connections/<int:connection_id>/disconnect/", views.disconnect, name="disconnect"),
    path("accounts/", views.accounts, name="accounts"),
    path("connections/<int:connection_id>/pull-accounts/", views.accounts_pull, name="accounts_pull"),
    path("tax-rates/<int:tax_rate_id>/map/", views.tax_rate_mapping, name="tax_rate_map"),
]
