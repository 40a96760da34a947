from decimal import Decimal

import pytest
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobKind, JobState
from admin_jobs.services import job_run
from billing.models import AccountType
from tests.billing.factories import (
    AccountFactory,
    AdminUserFactory,
    EntityFactory,
    TaxRateFactory,
    UserFactory,
)
from xero_integration.models import XeroAccount, XeroConnection, XeroTaxRate
from xero_integration.selectors import account_matches

pytestmark = pytest.mark.django_db


@pytest.fixture
def connected(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity, XeroConnection.objects.get()


def _pull(client, connection):
    response = client.post(reverse("xero_integration:accounts_pull", args=[connection.pk]))
    assert response.status_code == 302
    job = BackgroundJob.objects.get(kind=JobKind.PULL_ACCOUNTS)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_pull_stores_the_organisations_accounts_and_tax_rates(client, connected):
    entity, connection = connected
    job = _pull(client, connection)
    assert job.state == JobState.SUCCEEDED
    assert XeroAccount.objects.filter(connection=connection).count() == 13
    assert XeroTaxRate.objects.filter(connection=connection).count() == 4
    connection.refresh_from_db()
    assert connection.base_currency == "NZD"
    assert connection.accounts_pulled_at is not None
    assert connection.day_limit_remaining is not None  # from X-DayLimit-Remaining


def test_match_status_of_each_bms_account(client, connected):
    entity, connection = connected
    _pull(client, connection)
    AccountFactory(entity=entity, code="200", name="Sales", type=AccountType.REVENUE)
    AccountFactory(entity=entity, code="299", name="Old Sales", type=AccountType.REVENUE)
    AccountFactory(entity=entity, code="310", name="COGS", type=AccountType.EXPENSE)
    AccountFactory(entity=entity, code="4100", name="Consulting", type=AccountType.REVENUE)
    statuses = {m.account.code: m.status for m in account_matches(entity=entity)}
    assert statuses == {
        "200": "matched",
        "299": "archived",
        "310": "type_mismatch",
        "4100": "missing",
    }
    page = client.get(reverse("xero_integration:accounts"))
    body = page.content.decode()
    for label in ("Matched", "Archived in Xero", "Type mismatch", "Missing in Xero"):
        assert label in body


def test_tax_rate_mapping_accepts_only_the_organisations_active_tax_types(client, connected):
    entity, connection = connected
    _pull(client, connection)
    gst = TaxRateFactory(entity=entity, name="GST 15%", rate=Decimal("15"), xero_tax_type="")
    client.post(
        reverse("xero_integration:tax_rate_map", args=[gst.pk]), {"xero_tax_type": "OUTPUT2"}
    )
    gst.refresh_from_db()
    assert gst.xero_tax_type == "OUTPUT2"
    client.post(
        reverse("xero_integration:tax_rate_map", args=[gst.pk]), {"xero_tax_type": "OUTPUT9"}
    )
    gst.refresh_from_db()
    assert gst.xero_tax_type == "OUTPUT2"


def test_pull_is_post_only_and_admin_only(client, connected):
    _, connection = connected
    url = reverse("xero_integration:accounts_pull", args=[connection.pk])
    assert client.get(url).status_code == 405
    client.logout()
    client.force_login(UserFactory())
    assert client.post(url).status_code == 403
    assert not BackgroundJob.objects.filter(kind=JobKind.PULL_ACCOUNTS).exists()
