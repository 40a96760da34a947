"""Rate limits per (app, organisation) and per app, on the sandbox clock."""

from __future__ import annotations

import threading

import pytest
from xero_python.exceptions import HTTPStatusException, RateLimitException

from xero_sandbox.seed import DEMO_NZ_TENANT_ID, DEMO_UK_TENANT_ID


def test_headers_on_every_tenant_response(xero):
    _d, _s, headers = xero.accounting.get_organisations(
        xero.tenant_id, _return_http_data_only=False
    )
    assert headers["X-DayLimit-Remaining"] == "4999"
    assert headers["X-MinLimit-Remaining"] == "59"
    assert int(headers["X-AppMinLimit-Remaining"]) < 10000


def test_minute_limit_429_with_retry_after_and_recovery(xero, sandbox):
    for _ in range(60):
        xero.accounting.get_organisations(xero.tenant_id)
    sandbox.clock.advance(20)
    with pytest.raises(RateLimitException) as exc:
        xero.accounting.get_organisations(xero.tenant_id)
    assert exc.value.rate_limit == "minute"
    retry_after = int(exc.value.headers["Retry-After"])
    assert 35 <= retry_after <= 40
    assert exc.value.headers["X-MinLimit-Remaining"] == "0"
    # The other organisation has its own budget.
    xero.accounting.get_organisations(DEMO_UK_TENANT_ID)
    assert [e["problem"] for e in sandbox.rate_limited()] == ["minute"]
    sandbox.clock.advance(retry_after)
    assert xero.accounting.get_organisations(xero.tenant_id).organisations


def test_day_limit(xero, sandbox):
    sandbox.set_limits(day=5)
    for _ in range(5):
        xero.accounting.get_organisations(xero.tenant_id)
        sandbox.clock.advance(61)
    with pytest.raises(RateLimitException) as exc:
        xero.accounting.get_organisations(xero.tenant_id)
    assert exc.value.rate_limit == "day"
    assert 86000 < int(exc.value.headers["Retry-After"]) <= 86400
    assert exc.value.headers["X-DayLimit-Remaining"] == "0"


def test_app_minute_limit_across_organisations(xero, sandbox):
    sandbox.set_limits(app_minute=3)
    sandbox.reset_limit_counters()  # the fixture's OAuth flow already called /connections
    xero.accounting.get_organisations(DEMO_NZ_TENANT_ID)
    xero.accounting.get_organisations(DEMO_UK_TENANT_ID)
    xero.accounting.get_organisations(DEMO_NZ_TENANT_ID)
    with pytest.raises(RateLimitException) as exc:
        xero.accounting.get_organisations(DEMO_UK_TENANT_ID)
    assert exc.value.rate_limit == "appminute"


def test_concurrent_limit_of_five(xero, sandbox):
    sandbox.set_fault("slow", "GET /Organisation", delay=1.5, count=5)
    errors: list[Exception] = []

    def call():
        try:
            xero.accounting.get_organisations(xero.tenant_id)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    pause = threading.Event()
    for _ in range(150):  # until the five are in flight (they each hold a slot for 1.5 s)
        if sum(u["in_flight"] for u in sandbox.sandbox.limiter.usage().values()) == 5:
            break
        pause.wait(0.02)
    else:
        raise AssertionError("the five slow requests never were in flight together")
    with pytest.raises(RateLimitException) as exc:
        xero.accounting.get_organisations(xero.tenant_id)
    assert exc.value.rate_limit == "concurrent"
    for t in threads:
        t.join()
    assert errors == []


def test_limits_can_be_switched_off(xero, sandbox):
    sandbox.set_limits(enabled=False)
    for _ in range(70):
        xero.accounting.get_organisations(xero.tenant_id)
    assert sandbox.rate_limited() == []


def test_connections_endpoint_counts_app_minute_only(xero, sandbox):
    sandbox.set_limits(app_minute=1)
    sandbox.reset_limit_counters()
    xero.identity.get_connections()
    with pytest.raises(HTTPStatusException) as exc:
        xero.identity.get_connections()
    assert exc.value.status == 429 and exc.value.headers["X-Rate-Limit-Problem"] == "appminute"
