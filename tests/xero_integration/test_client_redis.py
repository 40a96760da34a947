"""Losing the limiter's Redis after Xero answered must not lose Xero's answer."""

import pytest
import redis

from tests.billing.factories import AdminUserFactory, EntityFactory
from xero_integration.ratelimit import XeroRateLimiter
from xero_integration.services import xero_client_for_entity

pytestmark = pytest.mark.django_db


def test_limiter_bookkeeping_failing_after_a_call_keeps_the_result(client, xero_env, monkeypatch):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    api = xero_client_for_entity(entity=entity)

    def redis_gone(self, *args, **kwargs):
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(XeroRateLimiter, "record_response", redis_gone)
    organisation = api.organisation_get()
    assert organisation.base_currency == "NZD"
