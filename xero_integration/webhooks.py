"""Xero's webhooks: verify, store each event once, and hand the work to a job.

Xero's rules for the endpoint (xero-api-notes.md §6, reliability-notes.md §7): the signature is
base64(HMAC-SHA256(raw body, webhook key)) in `x-xero-signature`; a bad signature gets 401; a good
one gets 200 with an empty body and no cookies within 5 seconds — the "Intent to Receive" check
sends exactly such payloads with no events. Events are thin triggers, never data: BMS never
fetches their `resourceUrl` (SSRF) and makes no Xero call while Xero waits. An INVOICE event
queues the organisation's payments pull (payments have no webhook of their own; applying or
deleting one may update the invoice), which collapses with any pull not yet started.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from admin_jobs.models import JobTrigger
from bms import clock
from xero_integration.models import XeroConnection, XeroWebhookEvent
from xero_integration.payment_sync import WEBHOOK_PULL_DELAY, payments_pull_enqueue

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-xero-signature"
PULL_CATEGORIES = {"INVOICE"}
PULL_TYPES = {"CREATE", "UPDATE"}


def webhook_signature_is_valid(*, body: bytes, signature: str) -> bool:
    """Whether `signature` is Xero's signature of the raw body, compared in constant time."""
    key = str(settings.XERO_WEBHOOK_KEY or "")
    if not key or not signature:
        return False
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))


@dataclass
class WebhookReceipt:
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0  # unknown tenants or malformed events
    pulls_enqueued: int = 0


def _event_date(value: Any) -> datetime:
    """Xero sends `2024-06-21T01:15:39.902` with no zone suffix: it is UTC."""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def webhook_events_receive(*, payload: dict[str, Any]) -> WebhookReceipt:
    """Store the delivery's events once each and queue the work they call for; makes no Xero
    call. An Intent to Receive payload has no events and stores nothing. Replayed events (Xero
    retries deliveries) are recognised by the unique constraint and cause nothing new."""
    receipt = WebhookReceipt()
    events = payload.get("events") or []
    if not isinstance(events, list) or not events:
        return receipt
    tenant_ids = {str(e.get("tenantId", "")) for e in events if isinstance(e, dict)}
    connections = {c.tenant_id: c for c in XeroConnection.objects.filter(tenant_id__in=tenant_ids)}
    now = clock.now()
    to_pull: dict[str, list[int]] = {}
    with transaction.atomic():
        for event in events:
            row = _event_row(event, connections, now)
            if row is None:
                receipt.ignored += 1
                continue
            try:
                # A savepoint, so a replayed event leaves the rest of the delivery intact.
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                receipt.duplicates += 1
                continue
            receipt.stored += 1
            if row.event_category in PULL_CATEGORIES and row.event_type in PULL_TYPES:
                to_pull.setdefault(row.tenant_id, []).append(row.pk)
        for tenant_id, event_ids in to_pull.items():
            job = payments_pull_enqueue(
                connection=connections[tenant_id],
                triggered_by=JobTrigger.WEBHOOK,
                not_before=now + WEBHOOK_PULL_DELAY,
            )
            if job is not None:
                receipt.pulls_enqueued += 1
            # Handled means "its work is queued": the pull job carries it from here.
            error = "" if job is not None else "No BMS entity is linked to this organisation."
            XeroWebhookEvent.objects.filter(pk__in=event_ids).update(
                handled_at=now, handler_error=error
            )
    return receipt


def _event_row(
    event: Any, connections: dict[str, XeroConnection], now: datetime
) -> XeroWebhookEvent | None:
    if not isinstance(event, dict):
        return None
    tenant_id = str(event.get("tenantId", ""))
    if tenant_id not in connections:
        return None  # an organisation BMS does not know: nothing to do, nothing stored
    try:
        event_date = _event_date(event["eventDateUtc"])
        row = XeroWebhookEvent(
            tenant_id=tenant_id,
            resource_id=str(event["resourceId"])[:36],
            event_category=str(event["eventCategory"]).upper()[:20],
            event_type=str(event["eventType"]).upper()[:20],
            event_date=event_date,
            received_at=now,
        )
    except (KeyError, TypeError, ValueError):
        logger.warning("xero webhook: malformed event for tenant %s ignored", tenant_id)
        return None
    return row


@csrf_exempt
@require_POST
def xero_webhook(request: HttpRequest) -> HttpResponse:
    """POST /xero/webhooks/: 401 for a bad signature, else 200 with an empty body."""
    body = request.body  # the raw bytes Xero signed, read before anything parses them
    if not webhook_signature_is_valid(
        body=body, signature=request.headers.get(SIGNATURE_HEADER, "")
    ):
        return HttpResponse(status=401)
    try:
        payload = json.loads(body)
    except ValueError:
        # Correctly signed yet unreadable: a retry would fail the same way, so acknowledge it.
        logger.warning("xero webhook: signed payload is not JSON (%d bytes)", len(body))
        return HttpResponse(status=200)
    if isinstance(payload, dict):
        receipt = webhook_events_receive(payload=payload)
        if receipt.stored or receipt.duplicates or receipt.ignored:
            logger.info("xero webhook: %s", receipt)
    return HttpResponse(status=200)
