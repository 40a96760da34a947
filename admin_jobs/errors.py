"""What a job handler raises to tell the engine how an attempt ended.

Handlers never touch leases, retries or states: they raise one of these (or return a JobSuccess)
and the engine records it. Messages are for people and say what to do next; `detail` is for admins
(raw validation messages from Xero, JSON-serialisable).
"""

from datetime import datetime
from typing import Any


class JobError(Exception):
    """Base of every outcome a handler can raise. Never raised itself."""

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class TransientJobError(JobError):
    """Network errors, timeouts, 5xx, 429: retried with back-off until the retry horizon passes.

    retry_after (seconds) is a lower bound on the next delay, e.g. from a Retry-After header.
    """

    def __init__(
        self, message: str, *, detail: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class PermanentJobError(JobError):
    """Validation errors, a missing mapping: the job fails at once and is not retried by itself."""


class JobWait(JobError):
    """Not a failure: wait until `until` (a rate-limit window), or until resumed when None (a paused
    connection). Waiting neither counts as a failure nor uses up the retry horizon."""

    def __init__(self, reason: str, *, until: datetime | None) -> None:
        super().__init__(reason)
        self.until = until


class JobSkipped(JobError):
    """There was nothing to do (e.g. the record is already in Xero unchanged)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
