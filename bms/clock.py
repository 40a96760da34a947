"""The one place product code gets "now" from.

Tests (and the sandbox, which has its own clock) move time forward together, which is what makes
leases, retry back-off, Xero's 6-minute idempotency window and nightly journal runs testable in
seconds. The offset can also come from a file so that worker processes started by a test follow
the same clock (BMS_CLOCK_OFFSET_FILE holds a number of seconds).
"""

import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

_offset = timedelta(0)


def _file_offset() -> timedelta:
    path = os.environ.get("BMS_CLOCK_OFFSET_FILE")
    if not path:
        return timedelta(0)
    try:
        with open(path) as fh:
            return timedelta(seconds=float(fh.read().strip() or 0))
    except FileNotFoundError:
        return timedelta(0)


def now() -> datetime:
    return timezone.now() + _offset + _file_offset()


def today_in(tz_name: str) -> date:
    return now().astimezone(ZoneInfo(tz_name)).date()


def advance(*, seconds: float) -> None:
    global _offset
    _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
