"""POST /xero/webhooks/: signatures, Intent to Receive, storing events once, and the pull they
trigger — through Django's test client and, end to end, from the sandbox over real HTTP."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from admin_jobs.models import BackgroundJob, JobKind, JobState, JobTrigger
from billing.models import Payment, PaymentSource
from bms import clock
from tests.billing.factories import AdminUserFactory, EntityFactory
from tests.xero_integration.factories import XeroConnectionFactory, XeroEntityLinkFactory
from tests.xero_integration.payments_support import run, synced_invoice
from xero_integration.models import XeroConnection, XeroWebhookEvent
from xero_integration.payment_sync import WEBHOOK_PULL_DELAY, payments_pull_enqueue
from xero_sandbox.webhooks import intent_to_receive, sign

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.xero_integration.payments_support"),
]

URL = "/xero/webhooks/"
KEY = "bms-demo-webhook-key"  # bms.settings.test.XERO_WEBHOOK_KEY, the sandbox demo app's key
TENANT = "11111111-2222-3333-4444-555555555555"


def _event(category="INVOICE", kind="UPDATE", resource_id=None, date="2026-11-21T01:15:39.902"):
    resource_id = resource_id or "aaaaaaaa-0000-0000-0000-000000000001"
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": date,
        "eventType": kind,
        "eventCategory": category,
        "tenantId": TENANT,
        "tenantType": "ORGANISATION",
    }


def _body(*events, entropy="ABCDEF0123"):
    return json.dumps(
        {"events": list(events), "firstEventSequence": 1, "lastEventSequence": len(events),
         "entropy": entropy}
    ).encode()  # fmt: skip


def _post(body: bytes, signature: str | None = None, client: Client | None = None):
    headers = {} if signature == "" else {"x-xero-signature": signature or sign(KEY, body)}
    return (client or Client()).post(
        URL, data=body, content_type="application/json", headers=headers
    )


@pytest.fixture
def known_tenant():
    connection = XeroConnectionFactory(tenant_id=TENANT, tenant_name="Kiwi Coffee Roasters Ltd")
    XeroEntityLinkFactory(connection=connection)
    return connection


def _pull_jobs():
    return list(BackgroundJob.objects.filter(kind=JobKind.PULL_PAYMENTS))


def test_a_correctly_signed_event_is_stored_and_answered_200_with_an_empty_body_and_no_cookie(
    known_tenant,
):
    response = _post(_body(_event()))

    assert response.status_code == 200
    assert response.content == b""
    assert not response.cookies
    assert "Set-Cookie" not in response.headers
    [event] = XeroWebhookEvent.objects.all()
    assert (event.tenant_id, event.event_category, event.event_type) == (
        TENANT,
        "INVOICE",
        "UPDATE",
    )
    assert event.event_date.isoformat() == "2026-11-21T01:15:39.902000+00:00"
    assert event.handled_at is not None
    [job] = _pull_jobs()
    assert job.triggered_by == JobTrigger.WEBHOOK
    assert job.target == known_tenant
    assert job.dedupe_key == f"pull_payments:{TENANT}"
    assert job.state == JobState.QUEUED
    # "Soon": after a short pause that lets a burst of events collapse into this one job.
    delay = job.not_before - job.created_at
    assert WEBHOOK_PULL_DELAY - timedelta(seconds=1) < delay <= WEBHOOK_PULL_DELAY


@pytest.mark.parametrize(
    "signature",
    ["", "not-a-signature", sign("another-key", b"x"), "ünïcode"],
    ids=["missing", "garbage", "wrong-key", "non-ascii"],
)
def test_a_bad_signature_gets_401_and_nothing_is_stored(known_tenant, signature):
    response = _post(_body(_event()), signature=signature)
    assert response.status_code == 401
    assert response.content == b""
    assert not XeroWebhookEvent.objects.exists()
    assert _pull_jobs() == []


def test_a_signature_of_another_body_gets_401(known_tenant):
    body = _body(_event())
    response = _post(body, signature=sign(KEY, body + b" "))
    assert response.status_code == 401


def test_intent_to_receive_gets_200_or_401_and_stores_nothing(known_tenant):
    body = json.dumps(
        {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "S0m3r4Nd0m"}
    ).encode()
    good = _post(body)
    bad = _post(body, signature=sign(KEY + "-wrong", body))
    assert (good.status_code, good.content, bool(good.cookies)) == (200, b"", False)
    assert bad.status_code == 401
    assert not XeroWebhookEvent.objects.exists()
    assert _pull_jobs() == []


def test_a_replayed_delivery_stores_nothing_new(known_tenant):
    body = _body(_event(), _event(category="CONTACT", kind="CREATE"))
    assert _post(body).status_code == 200
    assert _post(body).status_code == 200  # Xero retried: the same events again
    assert XeroWebhookEvent.objects.count() == 2
    assert len(_pull_jobs()) == 1


def test_more_invoice_events_collapse_into_the_one_unstarted_pull(known_tenant):
    _post(_body(_event(resource_id="aaaaaaaa-0000-0000-0000-000000000001")))
    _post(_body(_event(resource_id="aaaaaaaa-0000-0000-0000-000000000002", kind="CREATE")))
    _post(_body(_event(date="2026-11-21T01:16:00.000")))
    assert XeroWebhookEvent.objects.count() == 3
    assert len(_pull_jobs()) == 1


def test_a_contact_event_is_stored_but_pulls_nothing(known_tenant):
    assert _post(_body(_event(category="CONTACT", kind="UPDATE"))).status_code == 200
    [event] = XeroWebhookEvent.objects.all()
    assert event.event_category == "CONTACT"
    assert event.handled_at is None  # left for a contact handler; payments have nothing to do
    assert _pull_jobs() == []


def test_an_unknown_tenant_is_acknowledged_and_ignored():
    response = _post(_body(_event()))
    assert (response.status_code, response.content) == (200, b"")
    assert not XeroWebhookEvent.objects.exists()
    assert _pull_jobs() == []


def test_a_signed_payload_that_is_not_json_is_acknowledged(known_tenant):
    response = _post(b"{not json")
    assert (response.status_code, response.content) == (200, b"")
    assert not XeroWebhookEvent.objects.exists()


def test_only_post_is_accepted():
    assert Client().get(URL).status_code == 405


def test_a_session_cookie_sent_along_does_not_come_back(known_tenant):
    client = Client()
    client.force_login(AdminUserFactory())
    response = _post(_body(_event()), client=client)
    assert response.status_code == 200
    assert not response.cookies


def test_the_webhook_makes_no_xero_call_and_never_fetches_the_resource_url(
    client, xero_env, settings
):
    client.force_login(AdminUserFactory())
    entity = EntityFactory(base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    event = {
        **_event(),
        "tenantId": xero_env.nz_tenant_id,
        # Pointing at the sandbox: had BMS fetched it, the sandbox would have logged it.
        "resourceUrl": f"{xero_env.sandbox.api_url}/Invoices/aaaaaaaa-0000-0000-0000-000000000001",
    }
    start = xero_env.sandbox.last_seq()
    assert _post(_body(event)).status_code == 200
    assert xero_env.sandbox.requests_log(start) == []
    assert len(_pull_jobs()) == 1


# --- End to end: the sandbox delivers to BMS over real HTTP ------------------------------------


def test_intent_to_receive_over_real_http_passes(live_server):
    result = intent_to_receive(f"{live_server.url}{URL}", KEY)
    assert result["passed"], result["results"]
    assert not XeroWebhookEvent.objects.exists()


@pytest.fixture
def delivering(client, xero_env, live_server):
    """An entity connected to the NZ organisation, a synced invoice, and the sandbox's webhooks
    pointed at this BMS (after the set-up, so its own events are not delivered)."""
    client.force_login(AdminUserFactory())
    entity = EntityFactory(name="Kiwi Coffee Roasters Ltd", base_currency="NZD")
    xero_env.connect(client, entity, tenant_ids=[xero_env.nz_tenant_id])
    invoice, xero_id = synced_invoice(xero_env, entity)
    xero_env.sandbox.configure_app(webhook_url=f"{live_server.url}{URL}", webhook_key=KEY)
    return invoice, xero_id


def _delivered(xero_env):
    assert xero_env.sandbox.sandbox.webhooks.wait_idle(15)
    return [d for d in xero_env.sandbox.state.webhook_deliveries if d["ok"]]


def test_a_payment_in_xero_reaches_bms_through_the_invoice_update_webhook(delivering, xero_env):
    invoice, xero_id = delivering
    xero_env.sandbox.set_settings(invoice_update_on_payment=True)

    paid = xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="50")

    [delivery] = _delivered(xero_env)
    assert delivery["status"] == 200
    [event] = XeroWebhookEvent.objects.all()
    assert (event.resource_id, event.event_type) == (xero_id, "UPDATE")
    [job] = _pull_jobs()
    assert job.triggered_by == JobTrigger.WEBHOOK
    xero_env.advance(WEBHOOK_PULL_DELAY.total_seconds() + 1)
    job = run(job)
    assert job.state == JobState.SUCCEEDED, job.error_message
    [payment] = Payment.objects.all()
    assert (payment.xero_payment_id, payment.source) == (paid["PaymentID"], PaymentSource.XERO)
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_due) == (Decimal("50.00"), Decimal("65.00"))


def test_without_an_invoice_update_only_the_poll_finds_the_payment(delivering, xero_env):
    invoice, xero_id = delivering
    xero_env.sandbox.set_settings(invoice_update_on_payment=False)

    xero_env.sandbox.apply_payment(xero_env.nz_tenant_id, invoice_id=xero_id, amount="50")

    assert _delivered(xero_env) == []
    assert _pull_jobs() == []
    assert not Payment.objects.exists()
    # The scheduled poll (here: the job it queues) finds it.
    job = run(payments_pull_enqueue(connection=XeroConnection.objects.get()))
    assert job.state == JobState.SUCCEEDED
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("50.00")
    assert clock.now() - invoice.updated_at < timedelta(minutes=1)
