from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("customers/", views.customer_list, name="customer_list"),
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("credit-notes/", views.credit_note_list, name="credit_note_list"),
]
