from django.urls import path

from journals import views

app_name = "journals"
urlpatterns = [
    path("", views.journal_list, name="list"),
    path("<int:journal_id>/", views.journal_detail, name="detail"),
    path("<int:journal_id>/rebuild/", views.journal_rebuild, name="rebuild"),
    path("<int:journal_id>/push/", views.journal_push, name="push"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path(
        "reconciliation/<int:connection_id>/run/",
        views.reconciliation_run,
        name="reconciliation_run",
    ),
]
