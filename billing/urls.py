from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_create, name="customer_create"),
    path("customers/<int:pk>/", views.customer_detail, name="customer_detail"),
    path("customers/<int:pk>/edit/", views.customer_update, name="customer_update"),
    path("customers/<int:pk>/archive/", views.customer_archive, name="customer_archive"),
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("invoices/new/", views.invoice_create, name="invoice_create"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:pk>/edit/", views.invoice_update, name="invoice_update"),
    path("invoices/<int:pk>/release/", views.invoice_release, name="invoice_release"),
    path("invoices/<int:pk>/void/", views.invoice_void, name="invoice_void"),
    path(
        "invoices/<int:pk>/payments/new/",
        views.invoice_payment_create,
        name="invoice_payment_create",
    ),
    path("credit-notes/", views.credit_note_list, name="credit_note_list"),
    path("credit-notes/new/", views.credit_note_create, name="credit_note_create"),
    path("credit-notes/<int:pk>/", views.credit_note_detail, name="credit_note_detail"),
    path("credit-notes/<int:pk>/release/", views.credit_note_release, name="credit_note_release"),
    path(
        "credit-notes/<int:pk>/allocate/", views.credit_note_allocate, name="credit_note_allocate"
    ),
]
