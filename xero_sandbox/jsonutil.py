"""Xero's wire formats: `/Date(ms+0000)/` dates and money as JSON numbers with fixed decimals."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

MS_DATE_RE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<tz>[+-]\d{4})?\)/$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def ms_date(value: date | datetime) -> str:
    """Format as Xero does: `/Date(1709596800000+0000)/` (xero-api-notes.md §12.6)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.combine(value, time(0), tzinfo=UTC)
    ms = int((moment - EPOCH) / timedelta(milliseconds=1))
    return f"/Date({ms}+0000)/"


def ms_timestamp(value: datetime) -> str:
    """The envelope's DateTimeUTC has no offset: `/Date(1552326816230)/` (notes §2)."""
    return f"/Date({int((value - EPOCH) / timedelta(milliseconds=1))})/"


def parse_date(value: Any) -> date | None:
    """Accept `/Date(ms)/` (what xero-python sends), `YYYY-MM-DD` and ISO datetimes."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    match = MS_DATE_RE.match(value.strip())
    if match:
        return (EPOCH + timedelta(milliseconds=int(match.group("ms")))).date()
    text = value.strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"not a date: {value!r}") from exc


def parse_http_datetime(value: str) -> datetime:
    """If-Modified-Since: ISO-8601 (naive = UTC; the SDK sends isoformat()) or RFC 1123."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("boolean is not a number")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def iso_utc(value: datetime) -> str:
    """Identity API timestamps (connections) are plain ISO strings without offset."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


# --- JSON output -------------------------------------------------------------------------------
# The stdlib encoder cannot write Decimal without going through float, which would turn 12.50
# into 12.5; Xero writes money with its decimals, so the sandbox uses its own small writer.


def dumps(value: Any) -> str:
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Decimal):
        out.append(format(value, "f"))
    elif isinstance(value, int | float | str):
        out.append(json.dumps(value))
    elif isinstance(value, datetime | date):
        out.append(json.dumps(ms_date(value)))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


def loads_request(raw: bytes) -> Any:
    """Request bodies keep their numbers exact (Decimal), as Xero's .NET decimal does."""
    return json.loads(raw.decode("utf-8"), parse_float=Decimal)


# --- persistence (--data FILE) -------------------------------------------------------------------


def _persist_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, set):
        return {"$set": sorted(value)}
    raise TypeError(f"cannot persist {type(value).__name__}")


def _persist_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((key, raw),) = obj.items()
        if key == "$decimal":
            return Decimal(raw)
        if key == "$datetime":
            return datetime.fromisoformat(raw)
        if key == "$date":
            return date.fromisoformat(raw)
        if key == "$set":
            return set(raw)
    return obj


def persist_dumps(value: Any) -> str:
    return json.dumps(value, default=_persist_default, indent=1)


def persist_loads(text: str) -> Any:
    return json.loads(text, object_hook=_persist_hook)
