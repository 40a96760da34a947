"""The one Xero seam: timeouts, no hidden retries, error family, limits, tenant check."""

import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from xero_python.accounting import Contact, Contacts

from admin_jobs.errors import JobWait, PermanentJobError, TransientJobError
from tests.billing.factories import AdminUserFactory, EntityFactory
from xero_integration import client as xero
from xero_integration.models import (
    ConnectionStatus,
    XeroAuthorisation,
    XeroConnection,
    XeroEntityLink,
)
from xero_integration.ratelimit import limiter_from_settings
from xero_integration.services import xero_client_for_entity

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity(client, xero_env):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    return entity


def _create_contact(api: xero.XeroClient, name: str, key: str | None = None):
    kwargs = {"idempotency_key": key} if key else {}
    return api.call(
        "PUT /Contacts",
        "create_contacts",
        wrote=True,
        contacts=Contacts(contacts=[Contact(name=name)]),
        summarize_errors=False,
        **kwargs,
    )


def test_error_family_fits_the_job_engine():
    assert issubclass(xero.XeroTransientError, TransientJobError)
    assert issubclass(xero.XeroPermanentError, PermanentJobError)
    assert issubclass(xero.XeroRateLimitError, JobWait)
    assert issubclass(xero.XeroAuthError, JobWait)


def test_a_500_is_transient_and_sent_once(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    xero_env.sandbox.set_fault("error", "GET /Organisation", status=500, count=5)
    start = xero_env.sandbox.last_seq()
    with pytest.raises(xero.XeroTransientError) as exc:
        api.organisation_get()
    assert exc.value.outcome_unknown is False
    assert len(xero_env.sandbox.requests_log(start)) == 1  # urllib3's retries are off


def test_a_429_pauses_the_organisation_and_is_not_a_failure(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    xero_env.sandbox.set_fault(
        "rate_limit", "GET /Organisation", retry_after=42, problem="minute", count=1
    )
    start = xero_env.sandbox.last_seq()
    with pytest.raises(xero.XeroRateLimitError) as exc:
        api.organisation_get()
    assert exc.value.problem == "minute"
    assert 40 <= exc.value.retry_at - time.time() <= 43
    assert len(xero_env.sandbox.requests_log(start)) == 1  # no sleep-and-resend inside the SDK
    connection = XeroConnection.objects.get()
    assert connection.paused_until is not None
    # Until the pause ends, a new client refuses before calling Xero at all.
    with pytest.raises(xero.XeroRateLimitError):
        xero_client_for_entity(entity=entity)
    assert len(xero_env.sandbox.requests_log(start)) == 1


def test_a_dropped_reply_to_a_write_is_an_unknown_outcome(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    xero_env.sandbox.set_fault("commit_then_drop", "PUT /Contacts", count=1)
    start = xero_env.sandbox.last_seq()
    with pytest.raises(xero.XeroTransientError) as exc:
        _create_contact(api, "Harbour Cafe", key="bms-test-drop-1")
    assert exc.value.outcome_unknown is True
    # Sent once (urllib3 would have re-sent the PUT), and Xero did create it.
    assert len(xero_env.sandbox.requests_log(start)) == 1
    names = [c["Name"] for c in xero_env.sandbox.org(xero_env.nz_tenant_id)["contacts"].values()]
    assert names.count("Harbour Cafe") == 1


def test_a_slow_reply_times_out(entity, xero_env, settings):
    settings.XERO_HTTP_TIMEOUT_SECONDS = 0.5
    api = xero_client_for_entity(entity=entity)
    xero_env.sandbox.set_fault("slow", "GET /Organisation", delay=2.0, count=1)
    with pytest.raises(xero.XeroTransientError) as exc:
        api.organisation_get()
    assert "No reply from Xero" in exc.value.message


def test_validation_errors_are_permanent_with_every_message(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    _create_contact(api, "Harbour Cafe")
    with pytest.raises(xero.XeroPermanentError) as exc:
        api.call(
            "PUT /Contacts",
            "create_contacts",
            wrote=True,
            contacts=Contacts(contacts=[Contact(name="Harbour Cafe")]),
        )
    assert exc.value.messages == [
        "The contact name Harbour Cafe is already assigned to another contact. The contact name "
        "must be unique across all active contacts."
    ]


def test_limits_from_xeros_headers_are_stored(entity, xero_env):
    xero_client_for_entity(entity=entity).organisation_get()
    connection = XeroConnection.objects.get()
    assert connection.day_limit_remaining is not None and connection.day_limit_remaining < 5000
    assert connection.minute_limit_remaining is not None


def test_a_tenant_mismatch_stops_before_any_call(entity, xero_env):
    XeroEntityLink.objects.filter(entity=entity).update(tenant_id=xero_env.uk_tenant_id)
    start = xero_env.sandbox.last_seq()
    with pytest.raises(xero.XeroTenantMismatchError):
        xero_client_for_entity(entity=entity)
    assert xero_env.sandbox.requests_log(start) == []


def test_an_organisation_needing_reauthorisation_waits(entity, xero_env):
    XeroConnection.objects.update(status=ConnectionStatus.NEEDS_REAUTH)
    with pytest.raises(xero.XeroAuthError) as exc:
        xero_client_for_entity(entity=entity)
    assert exc.value.until is None


def test_missing_credentials_give_one_clear_message():
    with (
        override_settings(XERO_CLIENT_ID="", XERO_CLIENT_SECRET=""),
        pytest.raises(SystemCheckError) as exc,
    ):
        call_command("check", fail_level="WARNING")
    assert (
        "Xero is the selected accounting package but XERO_CLIENT_ID, XERO_CLIENT_SECRET are not "
        "set." in str(exc.value)
    )


def test_tokens_never_appear_in_log_lines(entity, xero_env, caplog):
    token = XeroAuthorisation.objects.get().access_token
    xero_env.sandbox.set_fault("error", "GET /Organisation", status=503, count=1)
    with pytest.raises(xero.XeroTransientError):
        xero_client_for_entity(entity=entity).organisation_get()
    assert caplog.records
    assert all(token not in record.getMessage() for record in caplog.records)


def test_manual_journal_create_and_find_by_narration(entity, xero_env):
    from datetime import date
    from decimal import Decimal

    api = xero_client_for_entity(entity=entity)
    created = api.manual_journal_create(
        narration="Cost of sales 2026-11-20 [bms-journal:7]",
        date=date(2026, 11, 20),
        lines=[
            xero.JournalLine(account_code="310", line_amount=Decimal("12.50")),
            xero.JournalLine(account_code="640", line_amount=Decimal("-12.50")),
        ],
        idempotency_key="bms-test-journal-7",
    )
    assert created.status == "POSTED"
    found = api.manual_journals_find(narration_contains="[bms-journal:7]")
    assert [j.manual_journal_id for j in found] == [created.manual_journal_id]
    assert [(line.account_code, line.line_amount) for line in found[0].lines] == [
        ("310", Decimal("12.50")),
        ("640", Decimal("-12.50")),
    ]


def test_an_unbalanced_manual_journal_is_refused_with_xeros_message(entity, xero_env):
    from datetime import date
    from decimal import Decimal

    api = xero_client_for_entity(entity=entity)
    with pytest.raises(xero.XeroPermanentError) as exc:
        api.manual_journal_create(
            narration="Unbalanced [bms-journal:8]",
            date=date(2026, 11, 20),
            lines=[
                xero.JournalLine(account_code="310", line_amount=Decimal("100.00")),
                xero.JournalLine(account_code="640", line_amount=Decimal("-10.00")),
            ],
            idempotency_key="bms-test-journal-8",
        )
    assert exc.value.messages == ["The total debits (100.00) must equal total credits (-10.00)"]


def test_a_reserved_place_is_used_by_the_next_call_and_counted_once(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    limiter = limiter_from_settings()

    with api.reserved():
        assert limiter.stats(api.tenant_id)["in_flight"] == 1
        api.organisation_get()
        assert limiter.stats(api.tenant_id)["in_flight"] == 0
        api.organisation_get()  # a second call in the block takes a place of its own

    stats = limiter.stats(api.tenant_id)
    assert (stats["in_flight"], stats["calls_in_window"]) == (0, 2)


def test_a_reserved_place_no_call_used_is_released(entity, xero_env):
    api = xero_client_for_entity(entity=entity)
    limiter = limiter_from_settings()

    with api.reserved():
        pass

    stats = limiter.stats(api.tenant_id)
    assert (stats["in_flight"], stats["calls_in_window"]) == (0, 1)
