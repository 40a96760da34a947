from django.http import HttpRequest, HttpResponse


def customer_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("customers")


def invoice_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("invoices")


def credit_note_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("credit notes")
