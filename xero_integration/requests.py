"""Idempotent writes to Xero: every write is stored before it is sent.

A XeroRequest row holds the Idempotency-Key and exactly what the request contains (the body and
its fixed members, the jobs whose records it carries). It is committed before the HTTP call, so:

* a retry within Xero's idempotency window (~6 minutes, xero-api-notes.md §3; BMS uses 5 minutes
  to leave a minute for clock skew, reliability-notes.md §1.3) re-sends the identical request with
  the same key, and Xero answers with the first response instead of applying it twice;
* after the window, or when a replay itself fails (Xero caches errors per key too), the caller
  looks each record up by its business key before creating it again, with a new key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.db import transaction

from admin_jobs.errors import JobError, TransientJobError
from bms import clock
from xero_integration.models import XeroConnection, XeroRequest, XeroRequestMember

IDEMPOTENCY_WINDOW = timedelta(minutes=5)
R = TypeVar("R")


@dataclass(frozen=True)
class Member:
    job_id: int
    object_id: int


def xero_request_record(
    *, connection: XeroConnection, operation: str, body: list[dict[str, Any]], members: list[Member]
) -> XeroRequest:
    """Store the request and its members in their own transaction, before anything is sent."""
    if len(body) != len(members):
        raise ValueError("a stored request needs exactly one member per element")
    with transaction.atomic():
        request = XeroRequest.objects.create(
            connection=connection,
            idempotency_key=f"pending-{uuid.uuid4().hex}",
            operation=operation,
            body=body,
            created_at=clock.now(),
        )
        # Deterministic from the stored row: the same request always carries the same key.
        slug = operation.lower().replace(" /", "-").replace("/", "-")
        request.idempotency_key = f"bms-{slug}-{request.pk}"
        request.save(update_fields=["idempotency_key"])
        XeroRequestMember.objects.bulk_create(
            XeroRequestMember(
                request=request, position=position, job_id=m.job_id, object_id=m.object_id
            )
            for position, m in enumerate(members)
        )
    return request


def xero_request_mark(*, request: XeroRequest, outcome: str, status: int | None = None) -> None:
    now = clock.now()
    XeroRequest.objects.filter(pk=request.pk).update(
        outcome=outcome, response_status=status, sent_at=now
    )
    request.outcome = outcome
    request.response_status = status
    request.sent_at = now


def xero_requests_unsettled(*, job_ids: list[int], operation_prefix: str) -> dict[int, XeroRequest]:
    """For each job, its latest request whose outcome BMS does not know: the reply was lost
    ("unknown"), or the worker died after sending and before recording the reply (""). A job
    runs under a lease, so its own unrecorded request can only be a crashed attempt's."""
    rows = (
        XeroRequestMember.objects.filter(
            job_id__in=job_ids,
            request__outcome__in=["", "unknown"],
            request__operation__startswith=operation_prefix,
        )
        .select_related("request")
        .order_by("job_id", "-request_id")
    )
    found: dict[int, XeroRequest] = {}
    for row in rows:
        found.setdefault(row.job_id, row.request)
    return found


def xero_request_is_replayable(request: XeroRequest) -> bool:
    """Whether Xero still remembers the request's key, so re-sending it is safe."""
    return clock.now() - request.created_at < IDEMPOTENCY_WINDOW


def xero_request_members(request: XeroRequest) -> list[XeroRequestMember]:
    return list(request.member_rows.order_by("position"))


def xero_request_send(
    *, request: XeroRequest, send: Callable[[list[dict[str, Any]], str], list[R]]
) -> list[R]:
    """Send a stored request with its own key and record how it ended.

    A transient failure whose reply was lost leaves the request "unknown" (the next attempt
    replays it within the window, or looks its records up after it); any other failure marks it
    "error". The exception propagates for the caller to record on its jobs.
    """
    try:
        results = send(request.body, request.idempotency_key)
    except TransientJobError as exc:
        unknown = bool(getattr(exc, "outcome_unknown", False))
        xero_request_mark(request=request, outcome="unknown" if unknown else "error")
        raise
    except JobError:
        xero_request_mark(request=request, outcome="error")
        raise
    xero_request_mark(request=request, outcome="ok", status=200)
    return results
