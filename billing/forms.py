"""Forms parse and type-check input; billing/services.py decides what is allowed.

A service's ValidationError is mapped back onto the form with `apply_service_error`, so its
message appears next to the field it names (and "lines" messages above the line rows).
"""

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from billing import selectors
from billing.models import (
    CreditNote,
    Customer,
    DocumentStatus,
    Entity,
    Invoice,
    LineAmountType,
    PaymentMethod,
    PaymentStatus,
    PaymentTermType,
)
from billing.selectors import (
    CREDIT_NOTE_SORTS,
    CUSTOMER_SORTS,
    INVOICE_SORTS,
    ArchivedFilter,
    CreditNoteFilters,
    CustomerFilters,
    InvoiceFilters,
    LineChoices,
)
from billing.services import LineInput

LINES_KEY = "lines"
UNIT_PRICE_DECIMALS_MESSAGE = "Unit prices have at most 4 decimal places."


def apply_service_error(form: forms.Form, exc: ValidationError) -> list[str]:
    """Put a service's messages on the form; returns the "lines" messages for the line rows."""
    line_errors: list[str] = []
    if not hasattr(exc, "error_dict"):
        for message in exc.messages:
            form.add_error(None, message)
        return line_errors
    for key, messages in exc.message_dict.items():
        if key == LINES_KEY:
            line_errors.extend(messages)
            continue
        for message in messages:
            form.add_error(key if key in form.fields else None, message)
    return line_errors


# --- List filters ----------------------------------------------------------------------------


class _ListFilterForm(forms.Form):
    """A GET form that never rejects a page: invalid values are dropped, valid ones applied."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    entity = forms.ModelChoiceField(
        queryset=Entity.objects.order_by("name"), required=False, empty_label="All entities"
    )

    def valid_data(self) -> dict[str, Any]:
        self.is_valid()
        return getattr(self, "cleaned_data", {})


def _sort_choices(sorts: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    return [(key, key) for key in sorts]


class CustomerFilterForm(_ListFilterForm):
    archived = forms.ChoiceField(
        required=False,
        choices=[
            (ArchivedFilter.ACTIVE, "Active"),
            (ArchivedFilter.ARCHIVED, "Archived"),
            (ArchivedFilter.ALL, "All"),
        ],
    )
    sort = forms.ChoiceField(required=False, choices=_sort_choices(CUSTOMER_SORTS))

    def filters(self) -> CustomerFilters:
        data = self.valid_data()
        entity = data.get("entity")
        return CustomerFilters(
            search=data.get("q") or "",
            entity_id=entity.pk if entity else None,
            archived=data.get("archived") or ArchivedFilter.ACTIVE,
            sort=data.get("sort") or selectors.CUSTOMER_DEFAULT_SORT,
        )


class _DocumentFilterForm(_ListFilterForm):
    customer = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=1)
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *DocumentStatus.choices]
    )
    issue_date_from = forms.DateField(
        required=False, label="Issued from", widget=forms.DateInput(attrs={"type": "date"})
    )
    issue_date_to = forms.DateField(
        required=False, label="Issued to", widget=forms.DateInput(attrs={"type": "date"})
    )


class InvoiceFilterForm(_DocumentFilterForm):
    payment_status = forms.ChoiceField(
        required=False, choices=[("", "Any payment status"), *PaymentStatus.choices]
    )
    sort = forms.ChoiceField(required=False, choices=_sort_choices(INVOICE_SORTS))

    def filters(self) -> InvoiceFilters:
        data = self.valid_data()
        entity = data.get("entity")
        return InvoiceFilters(
            search=data.get("q") or "",
            entity_id=entity.pk if entity else None,
            customer_id=data.get("customer"),
            status=data.get("status") or "",
            payment_status=data.get("payment_status") or "",
            issue_date_from=data.get("issue_date_from"),
            issue_date_to=data.get("issue_date_to"),
            sort=data.get("sort") or selectors.INVOICE_DEFAULT_SORT,
        )


class CreditNoteFilterForm(_DocumentFilterForm):
    sort = forms.ChoiceField(required=False, choices=_sort_choices(CREDIT_NOTE_SORTS))

    def filters(self) -> CreditNoteFilters:
        data = self.valid_data()
        entity = data.get("entity")
        return CreditNoteFilters(
            search=data.get("q") or "",
            entity_id=entity.pk if entity else None,
            customer_id=data.get("customer"),
            status=data.get("status") or "",
            issue_date_from=data.get("issue_date_from"),
            issue_date_to=data.get("issue_date_to"),
            sort=data.get("sort") or selectors.CREDIT_NOTE_DEFAULT_SORT,
        )


# --- Customers ---------------------------------------------------------------------------------

ADDRESS_PARTS = [
    ("line1", "Address line 1", 500),
    ("line2", "Address line 2", 500),
    ("city", "City", 255),
    ("region", "Region", 255),
    ("postal_code", "Postal code", 50),
    ("country", "Country", 50),
]


class CustomerForm(forms.Form):
    """Create (with an entity) or edit (without: a customer never moves entity)."""

    entity = forms.ModelChoiceField(queryset=Entity.objects.order_by("name"))
    name = forms.CharField(max_length=255)
    email = forms.EmailField(max_length=255, required=False)
    phone = forms.CharField(max_length=50, required=False)
    tax_number = forms.CharField(max_length=50, required=False, label="Tax number (GST/VAT)")
    account_number = forms.CharField(max_length=50, required=False)
    currency = forms.CharField(
        max_length=3,
        required=False,
        help_text="Three capital letters; blank means the entity's base currency.",
    )
    payment_terms_type = forms.ChoiceField(
        choices=PaymentTermType.choices, initial=PaymentTermType.DAYSAFTERBILLDATE
    )
    payment_terms_day = forms.IntegerField(min_value=0, max_value=31, initial=20)

    def __init__(self, *args: Any, is_create: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not is_create:
            del self.fields["entity"]
            self.fields["currency"].required = True
        for kind in ("street", "postal"):
            for part, label, max_length in ADDRESS_PARTS:
                self.fields[f"{kind}_{part}"] = forms.CharField(
                    max_length=max_length, required=False, label=f"{kind.title()} {label.lower()}"
                )

    def service_data(self) -> dict[str, Any]:
        """Everything but the entity, as the customer services take it."""
        return {key: value for key, value in self.cleaned_data.items() if key != "entity"}

    @staticmethod
    def initial_for(customer: Customer) -> dict[str, Any]:
        fields = [
            "name", "email", "phone", "tax_number", "account_number", "currency",
            "payment_terms_type", "payment_terms_day",
        ]  # fmt: skip
        fields += [
            f"{kind}_{part}" for kind in ("street", "postal") for part, _, _ in ADDRESS_PARTS
        ]
        return {field: getattr(customer, field) for field in fields}


# --- Invoices and credit notes -------------------------------------------------------------------


class DocumentForm(forms.Form):
    """The header of an invoice or credit note; the customer list is limited to one entity."""

    customer = forms.ModelChoiceField(queryset=Customer.objects.none())
    issue_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    line_amount_type = forms.ChoiceField(
        choices=LineAmountType.choices, initial=LineAmountType.EXCLUSIVE, label="Amounts are"
    )
    currency = forms.CharField(
        max_length=3, required=False, help_text="Blank means the customer's currency."
    )
    reference = forms.CharField(max_length=255, required=False)

    def __init__(
        self, *args: Any, entity: Entity, current_customer_pk: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        customer_field = self.fields["customer"]
        assert isinstance(customer_field, forms.ModelChoiceField)
        customer_field.queryset = selectors.customer_choices_for_entity(
            entity=entity, include_pk=current_customer_pk
        )
        customer_field.error_messages["invalid_choice"] = (
            f"Choose an active customer of {entity.name}."
        )


class InvoiceForm(DocumentForm):
    due_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Blank means the customer's payment terms decide.",
    )
    field_order = ["customer", "issue_date", "due_date", "line_amount_type", "currency"]

    @staticmethod
    def initial_for(invoice: Invoice) -> dict[str, Any]:
        return {
            "customer": invoice.customer_id,
            "issue_date": invoice.issue_date,
            "due_date": invoice.due_date,
            "line_amount_type": invoice.line_amount_type,
            "currency": invoice.currency,
            "reference": invoice.reference,
        }

    def update_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        # Blank currency or due date on an edit means "leave it as it is".
        for key in ("currency", "due_date"):
            if not data.get(key):
                data.pop(key, None)
        return data


class CreditNoteForm(DocumentForm):
    pass


def _choice_field(
    choices: list[tuple[int, str]], *, label: str, invalid_message: str
) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        choices=[("", "—"), *choices],
        coerce=int,
        empty_value=None,
        required=False,
        label=label,
        error_messages={"invalid_choice": invalid_message},
    )


class LineForm(forms.Form):
    """One invoice line. A blank row is ignored; quantity is needed once a row is used."""

    product = forms.TypedChoiceField(required=False)
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 1, "cols": 30})
    )
    quantity = forms.DecimalField(max_digits=12, decimal_places=4)
    unit_price = forms.DecimalField(
        max_digits=12,
        decimal_places=4,
        required=False,
        error_messages={"max_decimal_places": UNIT_PRICE_DECIMALS_MESSAGE},
    )
    discount_rate = forms.DecimalField(
        max_digits=5, decimal_places=2, required=False, label="Discount %"
    )
    account = forms.TypedChoiceField(required=False)
    tax_rate = forms.TypedChoiceField(required=False)

    def __init__(self, *args: Any, entity: Entity, choices: LineChoices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"] = _choice_field(
            choices.products,
            label="Product",
            invalid_message=f"Product #%(value)s is not an active product of {entity.name}.",
        )
        self.fields["account"] = _choice_field(
            choices.accounts,
            label="Account",
            invalid_message=f"Account #%(value)s is not an active account of {entity.name}.",
        )
        self.fields["tax_rate"] = _choice_field(
            choices.tax_rates,
            label="Tax rate",
            invalid_message=f"Tax rate #%(value)s is not an active tax rate of {entity.name}.",
        )
        self.order_fields(
            ["product", "description", "quantity", "unit_price", "discount_rate", "account"]
        )

    def line_input(self) -> LineInput:
        data = self.cleaned_data
        return LineInput(
            description=data.get("description") or "",
            quantity=data["quantity"],
            unit_price=data.get("unit_price"),
            account_id=data.get("account"),
            tax_rate_id=data.get("tax_rate"),
            product_id=data.get("product"),
            discount_rate=data.get("discount_rate") or Decimal("0"),
        )


class CreditNoteLineForm(LineForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["discount_rate"]


class BaseLineFormSet(forms.BaseFormSet):
    def line_inputs(self) -> list[LineInput]:
        """The rows in use, in order; call after is_valid()."""
        lines = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or (self.can_delete and data.get("DELETE")):
                continue
            lines.append(form.line_input())
        return lines


EXTRA_LINE_ROWS = 5
InvoiceLineFormSet = cast(
    type[BaseLineFormSet],
    forms.formset_factory(
        LineForm, formset=BaseLineFormSet, extra=EXTRA_LINE_ROWS, can_delete=True
    ),
)
CreditNoteLineFormSet = cast(
    type[BaseLineFormSet],
    forms.formset_factory(
        CreditNoteLineForm, formset=BaseLineFormSet, extra=EXTRA_LINE_ROWS, can_delete=True
    ),
)


def _plain(value: Decimal) -> str:
    """12.5000 → "12.5", 250.0000 → "250" (normalize() alone would give "2.5E+2")."""
    return format(value.normalize(), "f")


def line_initial(lines: Any) -> list[dict[str, Any]]:
    return [
        {
            "product": line.product_id,
            "description": line.description,
            "quantity": _plain(line.quantity),
            "unit_price": _plain(line.unit_price),
            "discount_rate": _plain(line.discount_rate) if line.discount_rate else "",
            "account": line.account_id,
            "tax_rate": line.tax_rate_id,
        }
        for line in lines
    ]


# --- Payments and allocations --------------------------------------------------------------------


class PaymentForm(forms.Form):
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    reference = forms.CharField(max_length=255, required=False)
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.BANK_TRANSFER)


class InvoiceDueChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.number} ({obj.issue_date}, {obj.amount_due} {obj.currency} due)"


class AllocationForm(forms.Form):
    invoice = InvoiceDueChoiceField(queryset=Invoice.objects.none())
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, credit_note: CreditNote, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        invoice_field = self.fields["invoice"]
        assert isinstance(invoice_field, forms.ModelChoiceField)
        invoice_field.queryset = selectors.invoice_choices_for_allocation(credit_note=credit_note)
        invoice_field.error_messages["invalid_choice"] = (
            f"Choose a released invoice of {credit_note.customer.name} in "
            f"{credit_note.currency} that still has money due."
        )
