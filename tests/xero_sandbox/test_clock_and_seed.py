"""The sandbox clock and the demo seed."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from xero_sandbox.clock import Clock
from xero_sandbox.seed import (
    DEMO_CLIENT_ID,
    DEMO_NZ_TENANT_ID,
    DEMO_UK_TENANT_ID,
    DEMO_WEBHOOK_KEY,
    demo_state,
)


def test_clock_advance_set_and_scale():
    clock = Clock()
    start = clock.now()
    clock.advance(3600)
    assert 3599 < (clock.now() - start).total_seconds() < 3601
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2030
    clock.set_scale(1000)
    before = clock.now()
    time.sleep(0.02)
    assert (clock.now() - before).total_seconds() >= 15


def test_demo_seed_matches_the_bms_entities():
    state = demo_state()
    app = state.apps[DEMO_CLIENT_ID]
    assert app["client_secret"] == "bms-demo-secret" and app["webhook_key"] == DEMO_WEBHOOK_KEY
    assert "http://localhost:8000/xero/callback/" in app["redirect_uris"]
    nz, uk = state.orgs[DEMO_NZ_TENANT_ID], state.orgs[DEMO_UK_TENANT_ID]
    assert nz["organisation"]["Name"] == "Kiwi Coffee Roasters Ltd"
    assert (nz["organisation"]["BaseCurrency"], nz["timezone"]) == ("NZD", "Pacific/Auckland")
    assert (uk["organisation"]["BaseCurrency"], uk["timezone"]) == ("GBP", "Europe/London")
    codes = {
        a["Code"]: (a["Type"], a["Status"], a.get("SystemAccount")) for a in nz["accounts"].values()
    }
    assert (
        codes["090"][0] == "BANK" and codes["299"][1] == "ARCHIVED" and codes["610"][2] == "DEBTORS"
    )
    assert codes["630"][0] == "INVENTORY" and codes["960"][2] == "RETAINEDEARNINGS"
    assert {r["Name"]: r["TaxType"] for r in nz["tax_rates"].values()} == {
        "15% GST on Income": "OUTPUT2",
        "GST on Expenses": "INPUT2",
        "No GST": "NONE",
        "Zero Rated": "ZERORATED",
    }
    assert {"OUTPUT2", "RROUTPUT", "ZERORATEDOUTPUT", "NONE"} <= set(uk["tax_rates"])
