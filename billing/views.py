"""Billing pages. Views parse input with a form, call one service or selector, and render.

Every view is for staff; every state change is POST-only (CSRF by the default middleware) and goes
through billing/services.py, whose ValidationError messages are shown next to the field they name.
"""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors, services
from billing.forms import (
    AllocationForm,
    BaseLineFormSet,
    CreditNoteFilterForm,
    CreditNoteForm,
    CreditNoteLineFormSet,
    CustomerFilterForm,
    CustomerForm,
    InvoiceFilterForm,
    InvoiceForm,
    InvoiceLineFormSet,
    PaymentForm,
    apply_service_error,
    line_initial,
)
from billing.models import CreditNote, Customer, DocumentStatus, Entity, Invoice
from bms import clock
from core.permissions import staff_required
from core.selectors import xero_is_enabled
from xero_integration.selectors import queryset_filter_synced, sync_rows_attach


def _page(request: HttpRequest, queryset: QuerySet[Any]) -> Page[Any]:
    return selectors.list_page(
        queryset, number=request.GET.get("page"), per_page=settings.BMS_LIST_PAGE_SIZE
    )


def _get_or_404(getter: Any, pk: int) -> Any:
    try:
        return getter(pk=pk)
    except (Customer.DoesNotExist, Invoice.DoesNotExist, CreditNote.DoesNotExist) as exc:
        raise Http404(str(exc)) from exc


def _redirect_to(record: Model) -> HttpResponse:
    return redirect(record.get_absolute_url())  # type: ignore[attr-defined]


# --- Customers ---------------------------------------------------------------------------------


@require_GET
@staff_required
def customer_list(request: HttpRequest) -> HttpResponse:
    filter_form = CustomerFilterForm(request.GET)
    filters = filter_form.filters()
    synced = request.GET.get("synced", "")
    customers = queryset_filter_synced(selectors.customer_list(filters=filters), synced)
    page = _page(request, customers)
    if xero_is_enabled():
        sync_rows_attach(objects=list(page.object_list))
    return render(
        request,
        "billing/customer_list.html",
        {"filter_form": filter_form, "filters": filters, "page": page, "synced": synced},
    )


@require_GET
@staff_required
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_or_404(selectors.customer_get, pk)
    return render(
        request,
        "billing/customer_detail.html",
        {
            "customer": customer,
            "recent_invoices": selectors.customer_recent_invoices(customer=customer),
            "recent_limit": selectors.CUSTOMER_RECENT_INVOICES,
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required
def customer_create(request: HttpRequest) -> HttpResponse:
    form = CustomerForm(request.POST or None, is_create=True)
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_create(
                entity=form.cleaned_data["entity"], **form.service_data()
            )
        except ValidationError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Customer {customer.name} created.")
            return _redirect_to(customer)
    return render(request, "billing/customer_form.html", {"form": form, "customer": None})


@require_http_methods(["GET", "POST"])
@staff_required
def customer_update(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_or_404(selectors.customer_get, pk)
    form = CustomerForm(
        request.POST or None, is_create=False, initial=CustomerForm.initial_for(customer)
    )
    if request.method == "POST" and form.is_valid():
        try:
            customer = services.customer_update(customer=customer, data=form.service_data())
        except ValidationError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Customer {customer.name} saved.")
            return _redirect_to(customer)
    return render(request, "billing/customer_form.html", {"form": form, "customer": customer})


@require_POST
@staff_required
def customer_archive(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _get_or_404(selectors.customer_get, pk)
    archived = request.POST.get("archived", "1") != "0"
    services.customer_archive(customer=customer, archived=archived)
    messages.success(request, f"Customer {customer.name} {'archived' if archived else 'restored'}.")
    return _redirect_to(customer)


# --- Invoices and credit notes: entity choice ------------------------------------------------


def _entity_for_new_document(request: HttpRequest) -> tuple[Entity | None, Customer | None]:
    """A new document's entity comes from ?customer=, ?entity=, or the only entity there is."""
    customer_pk = request.GET.get("customer", "")
    if customer_pk.isdigit():
        customer = _get_or_404(selectors.customer_get, int(customer_pk))
        return customer.entity, customer
    entities = list(selectors.entity_list())
    entity_pk = request.GET.get("entity", "")
    if entity_pk.isdigit():
        for entity in entities:
            if entity.pk == int(entity_pk):
                return entity, None
        raise Http404("No such entity.")
    if len(entities) == 1:
        return entities[0], None
    return None, None


def _entity_chooser(request: HttpRequest, *, title: str) -> HttpResponse:
    return render(
        request,
        "billing/entity_choose.html",
        {"entities": selectors.entity_list(), "title": title},
    )


# --- Invoices ----------------------------------------------------------------------------------


@require_GET
@staff_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    filter_form = InvoiceFilterForm(request.GET)
    filters = filter_form.filters()
    synced = request.GET.get("synced", "")
    invoices = queryset_filter_synced(selectors.invoice_list(filters=filters), synced)
    page = _page(request, invoices)
    if xero_is_enabled():
        sync_rows_attach(objects=list(page.object_list))
    return render(
        request,
        "billing/invoice_list.html",
        {"filter_form": filter_form, "filters": filters, "page": page, "synced": synced},
    )


@require_GET
@staff_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_or_404(selectors.invoice_get, pk)
    return render(request, "billing/invoice_detail.html", {"invoice": invoice})


def _invoice_form_page(
    request: HttpRequest,
    *,
    entity: Entity,
    form: InvoiceForm,
    formset: BaseLineFormSet,
    invoice: Invoice | None,
    line_errors: list[str],
) -> HttpResponse:
    return render(
        request,
        "billing/invoice_form.html",
        {
            "entity": entity,
            "form": form,
            "formset": formset,
            "invoice": invoice,
            "line_errors": line_errors,
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required
def invoice_create(request: HttpRequest) -> HttpResponse:
    entity, customer = _entity_for_new_document(request)
    if entity is None:
        return _entity_chooser(request, title="New invoice")
    data = request.POST if request.method == "POST" else None
    initial: dict[str, Any] = {"issue_date": clock.today_in(entity.timezone)}
    if customer is not None:
        initial["customer"] = customer.pk
    form = InvoiceForm(data, entity=entity, initial=initial)
    line_kwargs = {"entity": entity, "choices": selectors.line_choices_for_entity(entity=entity)}
    formset = InvoiceLineFormSet(data, prefix="lines", form_kwargs=line_kwargs)
    line_errors: list[str] = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        header = form.cleaned_data
        try:
            invoice = services.invoice_create(
                entity=entity,
                customer=header["customer"],
                issue_date=header["issue_date"],
                due_date=header["due_date"],
                currency=header["currency"] or None,
                line_amount_type=header["line_amount_type"],
                reference=header["reference"],
                lines=formset.line_inputs(),
                user=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            line_errors = apply_service_error(form, exc)
        else:
            messages.success(request, f"Invoice {invoice.number} saved as a draft.")
            return _redirect_to(invoice)
    return _invoice_form_page(
        request, entity=entity, form=form, formset=formset, invoice=None, line_errors=line_errors
    )


@require_http_methods(["GET", "POST"])
@staff_required
def invoice_update(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_or_404(selectors.invoice_get, pk)
    if invoice.status == DocumentStatus.VOID:
        messages.error(request, f"Invoice {invoice.number} is void and cannot be edited.")
        return _redirect_to(invoice)
    entity = invoice.entity
    data = request.POST if request.method == "POST" else None
    form = InvoiceForm(
        data,
        entity=entity,
        current_customer_pk=invoice.customer_id,
        initial=InvoiceForm.initial_for(invoice),
    )
    line_kwargs = {"entity": entity, "choices": selectors.line_choices_for_entity(entity=entity)}
    formset = InvoiceLineFormSet(
        data,
        prefix="lines",
        form_kwargs=line_kwargs,
        initial=line_initial(invoice.lines.all()),
    )
    line_errors: list[str] = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            invoice = services.invoice_update(
                invoice=invoice, data=form.update_data(), lines=formset.line_inputs()
            )
        except ValidationError as exc:
            line_errors = apply_service_error(form, exc)
        else:
            messages.success(request, f"Invoice {invoice.number} saved.")
            return _redirect_to(invoice)
    return _invoice_form_page(
        request,
        entity=entity,
        form=form,
        formset=formset,
        invoice=invoice,
        line_errors=line_errors,
    )


def _messages_from(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [message for messages_ in exc.message_dict.values() for message in messages_]
    return list(exc.messages)


@require_POST
@staff_required
def invoice_release(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_or_404(selectors.invoice_get, pk)
    try:
        invoice = services.invoice_release(invoice=invoice, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        for message in _messages_from(exc):
            messages.error(request, message)
    else:
        messages.success(request, f"Invoice {invoice.number} released.")
    return _redirect_to(invoice)


@require_POST
@staff_required
def invoice_void(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_or_404(selectors.invoice_get, pk)
    try:
        invoice = services.invoice_void(invoice=invoice, user=request.user)  # type: ignore[arg-type]
    except ValidationError as exc:
        for message in _messages_from(exc):
            messages.error(request, message)
    else:
        messages.success(request, f"Invoice {invoice.number} voided.")
    return _redirect_to(invoice)


@require_http_methods(["GET", "POST"])
@staff_required
def invoice_payment_create(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _get_or_404(selectors.invoice_get, pk)
    form = PaymentForm(
        request.POST or None,
        initial={"amount": invoice.amount_due, "date": clock.today_in(invoice.entity.timezone)},
    )
    if request.method == "POST" and form.is_valid():
        try:
            payment = services.payment_record(invoice=invoice, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(request, f"Payment of {payment.amount} {invoice.currency} recorded.")
            return _redirect_to(invoice)
    return render(request, "billing/payment_form.html", {"form": form, "invoice": invoice})


# --- Credit notes --------------------------------------------------------------------------------


@require_GET
@staff_required
def credit_note_list(request: HttpRequest) -> HttpResponse:
    filter_form = CreditNoteFilterForm(request.GET)
    filters = filter_form.filters()
    page = _page(request, selectors.credit_note_list(filters=filters))
    return render(
        request,
        "billing/credit_note_list.html",
        {"filter_form": filter_form, "filters": filters, "page": page},
    )


@require_GET
@staff_required
def credit_note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    credit_note = _get_or_404(selectors.credit_note_get, pk)
    return render(request, "billing/credit_note_detail.html", {"credit_note": credit_note})


@require_http_methods(["GET", "POST"])
@staff_required
def credit_note_create(request: HttpRequest) -> HttpResponse:
    entity, customer = _entity_for_new_document(request)
    if entity is None:
        return _entity_chooser(request, title="New credit note")
    data = request.POST if request.method == "POST" else None
    initial: dict[str, Any] = {"issue_date": clock.today_in(entity.timezone)}
    if customer is not None:
        initial["customer"] = customer.pk
    form = CreditNoteForm(data, entity=entity, initial=initial)
    line_kwargs = {"entity": entity, "choices": selectors.line_choices_for_entity(entity=entity)}
    formset = CreditNoteLineFormSet(data, prefix="lines", form_kwargs=line_kwargs)
    line_errors: list[str] = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        header = form.cleaned_data
        try:
            credit_note = services.credit_note_create(
                entity=entity,
                customer=header["customer"],
                issue_date=header["issue_date"],
                currency=header["currency"] or None,
                line_amount_type=header["line_amount_type"],
                reference=header["reference"],
                lines=formset.line_inputs(),
            )
        except ValidationError as exc:
            line_errors = apply_service_error(form, exc)
        else:
            messages.success(request, f"Credit note {credit_note.number} saved as a draft.")
            return _redirect_to(credit_note)
    return render(
        request,
        "billing/credit_note_form.html",
        {"entity": entity, "form": form, "formset": formset, "line_errors": line_errors},
    )


@require_POST
@staff_required
def credit_note_release(request: HttpRequest, pk: int) -> HttpResponse:
    credit_note = _get_or_404(selectors.credit_note_get, pk)
    try:
        credit_note = services.credit_note_release(credit_note=credit_note)
    except ValidationError as exc:
        for message in _messages_from(exc):
            messages.error(request, message)
    else:
        messages.success(request, f"Credit note {credit_note.number} released.")
    return _redirect_to(credit_note)


@require_http_methods(["GET", "POST"])
@staff_required
def credit_note_allocate(request: HttpRequest, pk: int) -> HttpResponse:
    credit_note = _get_or_404(selectors.credit_note_get, pk)
    form = AllocationForm(
        request.POST or None,
        credit_note=credit_note,
        initial={
            "amount": credit_note.remaining_credit,
            "date": clock.today_in(credit_note.entity.timezone),
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            allocation = services.credit_note_allocate(credit_note=credit_note, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_error(form, exc)
        else:
            messages.success(
                request,
                f"{allocation.amount} {credit_note.currency} of {credit_note.number} allocated "
                f"to {allocation.invoice.number}.",
            )
            return _redirect_to(credit_note)
    return render(
        request, "billing/allocation_form.html", {"form": form, "credit_note": credit_note}
    )
