from datetime import timedelta

import factory
from django.contrib.contenttypes.models import ContentType

from bms import clock
from tests.billing.factories import EntityFactory
from xero_integration.models import (
    ConnectionStatus,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
    XeroRecordLink,
)


class XeroAuthorisationFactory(factory.django.DjangoModelFactory[XeroAuthorisation]):
    class Meta:
        model = XeroAuthorisation

    access_token = factory.Sequence(lambda n: f"access-token-{n}")
    refresh_token = factory.Sequence(lambda n: f"refresh-token-{n}")
    access_token_expires_at = factory.LazyFunction(lambda: clock.now() + timedelta(minutes=30))
    refresh_token_issued_at = factory.LazyFunction(clock.now)
    scopes = "openid offline_access accounting.contacts accounting.transactions"
    created_at = factory.LazyFunction(clock.now)


class XeroConnectionFactory(factory.django.DjangoModelFactory[XeroConnection]):
    class Meta:
        model = XeroConnection

    tenant_id = factory.Faker("uuid4")
    tenant_name = factory.Sequence(lambda n: f"Organisation {n}")
    xero_connection_id = factory.Faker("uuid4")
    authorisation = factory.SubFactory(XeroAuthorisationFactory)
    status = ConnectionStatus.CONNECTED
    connected_at = factory.LazyFunction(clock.now)


class XeroEntityLinkFactory(factory.django.DjangoModelFactory[XeroEntityLink]):
    class Meta:
        model = XeroEntityLink

    entity = factory.SubFactory(EntityFactory)
    connection = factory.SubFactory(XeroConnectionFactory)
    tenant_id = factory.LazyAttribute(lambda link: link.connection.tenant_id)
    linked_at = factory.LazyFunction(clock.now)


class XeroRecordLinkFactory(factory.django.DjangoModelFactory[XeroRecordLink]):
    class Meta:
        model = XeroRecordLink

    entity = factory.SubFactory(EntityFactory)
    tenant_id = factory.Faker("uuid4")
    content_type = factory.LazyFunction(
        lambda: ContentType.objects.get(app_label="billing", model="customer")
    )
    object_id = factory.Sequence(lambda n: n + 1)
    xero_id = factory.Faker("uuid4")
