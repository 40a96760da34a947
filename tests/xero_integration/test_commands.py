import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from admin_jobs.models import BackgroundJob, JobKind
from tests.billing.factories import EntityFactory

pytestmark = pytest.mark.django_db


def test_push_customers_without_a_connected_entity_says_so():
    with pytest.raises(CommandError, match=r"No entity is connected to Xero"):
        call_command("xero_push_customers")


def test_push_customers_for_an_unknown_entity_code():
    with pytest.raises(CommandError, match="No entity with code NOPE."):
        call_command("xero_push_customers", "--entity", "NOPE")
    assert not BackgroundJob.objects.filter(kind=JobKind.BULK_CUSTOMER_SYNC).exists()


def test_push_customers_for_an_unconnected_entity():
    EntityFactory(code="UK")
    with pytest.raises(CommandError, match="Not connected to Xero: UK."):
        call_command("xero_push_customers", "--entity", "UK")
