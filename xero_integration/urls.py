from django.urls import path

from xero_integration import views, views_records, webhooks

app_name = "xero_integration"
urlpatterns = [
    path("integrations/", views.integrations, name="integrations"),
    path("connect/<int:entity_id>/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("webhooks/", webhooks.xero_webhook, name="webhooks"),
    path("choose/", views.choose, name="choose"),
    path("entities/<int:entity_id>/link/", views.link_existing, name="link_existing"),
    path("connections/<int:connection_id>/disconnect/", views.disconnect, name="disconnect"),
    path("accounts/", views.accounts, name="accounts"),
    path(
        "connections/<int:connection_id>/pull-accounts/", views.accounts_pull, name="accounts_pull"
    ),
    path("tax-rates/<int:tax_rate_id>/map/", views.tax_rate_mapping, name="tax_rate_map"),
    path("records/<str:model_key>/<int:pk>/sync/", views_records.record_sync, name="record_sync"),
    path(
        "records/<str:model_key>/<int:pk>/unlink/",
        views_records.record_unlink_view,
        name="record_unlink",
    ),
    path(
        "records/<str:model_key>/<int:pk>/exclusion/",
        views_records.record_exclusion,
        name="record_exclusion",
    ),
    path("customers/bulk-sync/", views_records.customers_bulk_sync, name="bulk_sync"),
    path("customers/bulk-sync/<int:job_id>/", views_records.bulk_progress, name="bulk_progress"),
    path("customers/import/", views_records.contacts_import, name="import_start"),
    path("customers/import/<int:job_id>/", views_records.import_review, name="import_review"),
]
