from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth.models import User

from billing.models import (
    Account,
    AccountType,
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Customer,
    Entity,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentSource,
    Product,
    TaxRate,
)
from bms import clock


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"clerk{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


class AdminUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"admin{n}")
    is_superuser = True


class EntityFactory(factory.django.DjangoModelFactory[Entity]):
    class Meta:
        model = Entity

    name = factory.Sequence(lambda n: f"Entity {n} Ltd")
    code = factory.Sequence(lambda n: f"E{n}")
    base_currency = "NZD"
    timezone = "Pacific/Auckland"
    invoice_prefix = factory.Sequence(lambda n: f"E{n}-INV-")
    credit_note_prefix = factory.Sequence(lambda n: f"E{n}-CN-")


class AccountFactory(factory.django.DjangoModelFactory[Account]):
    class Meta:
        model = Account
        django_get_or_create = ("entity", "code")

    entity = factory.SubFactory(EntityFactory)
    code = "200"
    name = "Sales"
    type = AccountType.REVENUE


class TaxRateFactory(factory.django.DjangoModelFactory[TaxRate]):
    class Meta:
        model = TaxRate
        django_get_or_create = ("entity", "name")

    entity = factory.SubFactory(EntityFactory)
    name = "15% GST on Income"
    rate = Decimal("15")
    xero_tax_type = "OUTPUT2"


class CustomerFactory(factory.django.DjangoModelFactory[Customer]):
    class Meta:
        model = Customer

    entity = factory.SubFactory(EntityFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"accounts{n}@customer.example")
    currency = factory.LazyAttribute(lambda c: c.entity.base_currency)
    created_at = factory.LazyFunction(clock.now)
    updated_at = factory.LazyFunction(clock.now)


class ProductFactory(factory.django.DjangoModelFactory[Product]):
    class Meta:
        model = Product

    entity = factory.SubFactory(EntityFactory)
    code = factory.Sequence(lambda n: f"P{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    sale_price = Decimal("10.00")
    unit_cost = Decimal("4.00")
    revenue_account = factory.SubFactory(AccountFactory, entity=factory.SelfAttribute("..entity"))
    cost_of_sales_account = factory.SubFactory(
        AccountFactory,
        entity=factory.SelfAttribute("..entity"),
        code="310",
        name="Cost of Goods Sold",
        type=AccountType.DIRECTCOSTS,
    )
    inventory_account = factory.SubFactory(
        AccountFactory,
        entity=factory.SelfAttribute("..entity"),
        code="640",
        name="Stock on Hand",
        type=AccountType.CURRENT,
    )
    tax_rate = factory.SubFactory(TaxRateFactory, entity=factory.SelfAttribute("..entity"))


class InvoiceFactory(factory.django.DjangoModelFactory[Invoice]):
    """A bare invoice row; use billing.services.invoice_create for one with computed totals."""

    class Meta:
        model = Invoice

    entity = factory.SubFactory(EntityFactory)
    customer = factory.SubFactory(CustomerFactory, entity=factory.SelfAttribute("..entity"))
    number = factory.Sequence(lambda n: f"INV-{n:06d}")
    issue_date = date(2026, 11, 2)
    due_date = date(2026, 11, 20)
    currency = factory.LazyAttribute(lambda i: i.entity.base_currency)
    created_at = factory.LazyFunction(clock.now)
    updated_at = factory.LazyFunction(clock.now)


class InvoiceLineFactory(factory.django.DjangoModelFactory[InvoiceLine]):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    position = factory.Sequence(lambda n: n + 1)
    description = "Flat white beans 1kg"
    quantity = Decimal("1")
    unit_price = Decimal("10.00")
    account = factory.SubFactory(AccountFactory, entity=factory.SelfAttribute("..invoice.entity"))
    tax_rate = factory.SubFactory(TaxRateFactory, entity=factory.SelfAttribute("..invoice.entity"))


class CreditNoteFactory(factory.django.DjangoModelFactory[CreditNote]):
    class Meta:
        model = CreditNote

    entity = factory.SubFactory(EntityFactory)
    customer = factory.SubFactory(CustomerFactory, entity=factory.SelfAttribute("..entity"))
    number = factory.Sequence(lambda n: f"CN-{n:06d}")
    issue_date = date(2026, 11, 3)
    currency = factory.LazyAttribute(lambda c: c.entity.base_currency)
    created_at = factory.LazyFunction(clock.now)
    updated_at = factory.LazyFunction(clock.now)


class CreditNoteLineFactory(factory.django.DjangoModelFactory[CreditNoteLine]):
    class Meta:
        model = CreditNoteLine

    credit_note = factory.SubFactory(CreditNoteFactory)
    position = factory.Sequence(lambda n: n + 1)
    description = "Returned beans"
    quantity = Decimal("1")
    unit_price = Decimal("10.00")


class CreditNoteAllocationFactory(factory.django.DjangoModelFactory[CreditNoteAllocation]):
    class Meta:
        model = CreditNoteAllocation

    credit_note = factory.SubFactory(CreditNoteFactory)
    invoice = factory.SubFactory(InvoiceFactory)
    amount = Decimal("1.00")
    date = date(2026, 11, 4)
    created_at = factory.LazyFunction(clock.now)


class PaymentFactory(factory.django.DjangoModelFactory[Payment]):
    class Meta:
        model = Payment

    invoice = factory.SubFactory(InvoiceFactory)
    amount = Decimal("5.00")
    date = date(2026, 11, 5)
    source = PaymentSource.BMS
    created_at = factory.LazyFunction(clock.now)
    updated_at = factory.LazyFunction(clock.now)
