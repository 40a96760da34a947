"""The shared Xero rate limiter on a real Redis (xero_integration/ratelimit.py).

Single-process tests pin each rule; multi-process tests hammer the limiter from forked workers
that record, from their own side, every admission as an interval [admitted_at, released_at] on
the Redis clock and their in-flight count in shared memory. The maxima are computed here:

* calls in any rolling window: the largest number of intervals that *intersect* one window of
  Xero's length, i.e. what Xero could count whatever the network latency of each call;
* calls in flight: the workers' own counter, and the largest overlap of the intervals.

Windows are scaled (1-2 s) so the whole module runs in well under a minute; only counts are
asserted, never durations. Keys live under a random prefix that is deleted afterwards; the
FLUSHDB test uses its own Redis database (BMS_TEST_REDIS_FLUSH_DB, default 13).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import random
import time
import uuid
from collections.abc import Iterator
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from xero_integration import ratelimit
from xero_integration.ratelimit import CallPermit, RateLimited, XeroRateLimiter

pytestmark = pytest.mark.redis

FLUSH_DB = int(os.environ.get("BMS_TEST_REDIS_FLUSH_DB", "13"))
CTX = mp.get_context("fork")


# -- fixtures and helpers -----------------------------------------------------------------------


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"bms:xero-rl-test:{uuid.uuid4().hex[:12]}"
    yield value
    _delete_prefix(client, value)


@pytest.fixture
def flush_url(redis_url: str) -> Iterator[str]:
    """A URL on the database the FLUSHDB tests may wipe."""
    url = urlparse(redis_url)._replace(path=f"/{FLUSH_DB}").geturl()
    conn = redis.Redis.from_url(url)
    yield url
    conn.flushdb()
    conn.close()


def make(client: redis.Redis, prefix: str, **kwargs: Any) -> XeroRateLimiter:
    kwargs.setdefault("max_wait_seconds", 0.0)
    return XeroRateLimiter(client, key_prefix=prefix, **kwargs)


def max_in_window(intervals: list[tuple[float, float]], window: float) -> int:
    """Most calls Xero could count in one rolling window: intervals [a, e] meeting (s - w, s]."""
    best = 0
    for start, _ in intervals:
        count = sum(1 for a, e in intervals if a <= start and e > start - window)
        best = max(best, count)
    return best


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


# -- single process: the rules -----------------------------------------------------------------


def test_minute_limit_refuses_the_next_call_until_the_oldest_is_a_window_old(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix, per_minute=5, window_seconds=60.0)
    permits = []
    for _ in range(5):
        with limiter.call("org-a") as permit:
            permits.append(permit)
    with pytest.raises(RateLimited) as caught, limiter.call("org-a"):
        pytest.fail("a sixth call in the window was admitted")
    assert caught.value.reason == "minute"
    assert caught.value.tenant_id == "org-a"
    first_release = permits[0].released_at
    assert first_release is not None
    # The first call holds its place for one window (+ margin) after it ended.
    assert caught.value.retry_at == pytest.approx(first_release + 60.0 + 0.5, abs=1e-5)
    assert caught.value.retry_at_datetime.timestamp() == pytest.approx(caught.value.retry_at)
    stats = limiter.stats("org-a")
    assert stats["calls_in_window"] == 5
    assert stats["in_flight"] == 0


def test_durable_last_call_at_in_normal_operation_never_holds(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix, per_minute=30)
    durable: float | None = None
    for _ in range(30):  # max_wait is 0: a hold would raise
        with limiter.call("org-a", last_call_at=durable) as permit:
            pass
        durable = permit.released_at
    assert limiter.stats("org-a")["hold_until"] is None


def test_waits_briefly_when_a_place_is_near(client: redis.Redis, prefix: str) -> None:
    limiter = make(client, prefix, per_minute=2, window_seconds=0.3, max_wait_seconds=5.0)
    admitted = 0
    for _ in range(6):
        with limiter.call("org-a"):
            admitted += 1
    assert admitted == 6


def test_concurrency_slots_expire_and_a_stale_release_frees_nothing(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix, concurrent=2, slot_ttl_seconds=0.3)
    first = limiter.acquire("org-a")
    second = limiter.acquire("org-a")
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-a")
    assert caught.value.reason == "concurrent"
    time.sleep(0.4)  # both leases expire (their holders "died")
    third = limiter.acquire("org-a")
    assert limiter.stats("org-a")["in_flight"] == 1
    limiter.release(first)  # stale token: must not free the new holder's slot
    limiter.release(second)
    assert first.lease_expired and second.lease_expired
    assert limiter.stats("org-a")["in_flight"] == 1
    limiter.release(third)
    assert not third.lease_expired
    assert limiter.stats("org-a")["in_flight"] == 0


def test_pause_after_429_is_stored_returned_and_only_extended(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix, window_seconds=6.0)  # a 10x sandbox: Retry-After 30 => 3 s
    retry_at = limiter.pause("org-a", seconds=30, problem="minute")
    now = limiter.stats("org-a")["now"]
    assert isinstance(now, float)
    assert retry_at - now == pytest.approx(3.0, abs=0.2)
    assert limiter.paused_until("org-a") == pytest.approx(retry_at)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-a")
    assert (caught.value.reason, caught.value.retry_at) == ("paused", pytest.approx(retry_at))
    assert limiter.pause("org-a", seconds=1, problem="minute") == pytest.approx(retry_at)
    assert limiter.paused_until("org-b") is None
    limiter.release(limiter.acquire("org-b"))  # another organisation is not paused


def test_short_pause_is_waited_out(client: redis.Redis, prefix: str) -> None:
    limiter = make(client, prefix, window_seconds=6.0, max_wait_seconds=5.0)
    limiter.pause("org-a", seconds=2, problem="minute")  # 0.2 s real
    with limiter.call("org-a") as permit:
        assert permit.tenant_id == "org-a"


def test_app_minute_429_pauses_every_organisation(client: redis.Redis, prefix: str) -> None:
    limiter = make(client, prefix)
    retry_at = limiter.pause("org-a", seconds=20, problem="AppMinute")
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-b")
    assert (caught.value.reason, caught.value.retry_at) == ("app", pytest.approx(retry_at))
    assert limiter.paused_until("org-c") == pytest.approx(retry_at)


def test_daily_budget_refuses_at_the_reserve_until_the_figure_is_stale(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix, day_reserve=1, day_recheck_seconds=0.3)
    limiter.record_response(
        "org-a", day_remaining=4, minute_remaining=59, app_minute_remaining=9999
    )
    assert limiter.stats("org-a")["day_remaining"] == 4
    admitted = 0
    with pytest.raises(RateLimited) as caught:
        for _ in range(10):
            limiter.release(limiter.acquire("org-a"))
            admitted += 1
    assert admitted == 3  # 4 left, reserve 1
    assert caught.value.reason == "day"
    assert limiter.stats("org-a")["day_remaining"] == 1
    limiter.release(limiter.acquire("org-b"))  # budgets are per organisation
    time.sleep(0.4)  # the figure goes stale: one call is let through to refresh it
    with limiter.call("org-a"):
        limiter.record_response(
            "org-a", day_remaining=0, minute_remaining=None, app_minute_remaining=None
        )
    with pytest.raises(RateLimited) as again:
        limiter.acquire("org-a")
    assert again.value.reason == "day"


def test_daily_budget_counts_the_organisations_other_calls_in_flight(
    client: redis.Redis, prefix: str
) -> None:
    limiter = make(client, prefix)
    others = [limiter.acquire("org-a"), limiter.acquire("org-a")]
    with limiter.call("org-a"):
        limiter.record_response(
            "org-a", day_remaining=100, minute_remaining=None, app_minute_remaining=None
        )
    assert limiter.stats("org-a")["day_remaining"] == 98
    for permit in others:
        limiter.release(permit)


def test_app_wide_limit_covers_all_organisations(client: redis.Redis, prefix: str) -> None:
    limiter = make(client, prefix, per_minute=60, app_per_minute=10)
    admitted = 0
    refusals: list[str] = []
    for i in range(15):
        try:
            limiter.release(limiter.acquire(f"org-{i % 3}"))
            admitted += 1
        except RateLimited as exc:
            refusals.append(exc.reason)
    assert admitted == 10
    assert refusals == ["app"] * 5


def test_one_busy_organisation_never_makes_another_wait(client: redis.Redis, prefix: str) -> None:
    limiter = make(client, prefix, per_minute=10, concurrent=5)
    for _ in range(5):
        limiter.release(limiter.acquire("busy"))
    held = [limiter.acquire("busy") for _ in range(5)]  # window full and every slot taken
    limiter.pause("busy", seconds=60, problem="minute")
    limiter.record_response("busy", day_remaining=0, minute_remaining=0, app_minute_remaining=None)
    with pytest.raises(RateLimited):
        limiter.acquire("busy")
    quiet = 0
    for _ in range(10):  # max_wait is 0: any wait would raise
        limiter.release(limiter.acquire("quiet"))
        quiet += 1
    assert quiet == 10
    for permit in held:
        limiter.release(permit)


def test_limiter_from_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    fake = SimpleNamespace(
        XERO_RATE_LIMIT_REDIS_URL="",
        CELERY_BROKER_URL=redis_url,
        XERO_RATE_LIMIT_PER_MINUTE=59,
        XERO_RATE_LIMIT_WINDOW_SECONDS=6.0,
        XERO_HTTP_TIMEOUT_SECONDS=10.0,
    )
    monkeypatch.setattr(ratelimit, "settings", fake)
    limiter = ratelimit.limiter_from_settings()
    assert (limiter.per_minute, limiter.concurrent, limiter.app_per_minute) == (59, 5, 10_000)
    assert (limiter.window_seconds, limiter.slot_ttl_seconds) == (6.0, 40.0)
    fake.CELERY_BROKER_URL = "filesystem://"
    with pytest.raises(ValueError, match="XERO_RATE_LIMIT_REDIS_URL"):
        ratelimit.limiter_from_settings()


# -- Redis state loss ---------------------------------------------------------------------------


def test_state_loss_holds_the_window_full_from_the_durable_last_call(flush_url: str) -> None:
    conn = redis.Redis.from_url(flush_url)
    limiter = XeroRateLimiter(
        conn, per_minute=60, window_seconds=60.0, max_wait_seconds=0, key_prefix="loss"
    )
    durable: float | None = None  # what the caller keeps in PostgreSQL
    for _ in range(60):
        with limiter.call("org-a", last_call_at=durable) as permit:
            pass
        durable = permit.released_at
    assert durable is not None
    conn.flushdb()  # Redis restarted without persistence

    # Without the durable time the limiter cannot know: the naive answer admits a second burst.
    naive = XeroRateLimiter(
        conn, per_minute=60, window_seconds=60.0, max_wait_seconds=0, key_prefix="naive"
    )
    for _ in range(60):
        naive.release(naive.acquire("org-a"))
    assert naive.stats("org-a")["calls_in_window"] == 60

    # With it, the window counts as full until that call is a window old ...
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-a", last_call_at=durable)
    assert caught.value.reason == "minute"
    assert caught.value.retry_at == pytest.approx(durable + 60.5, abs=1e-5)
    # ... for every worker, even one whose copy of last_call_at is stale or missing,
    with pytest.raises(RateLimited):
        limiter.acquire("org-a", last_call_at=durable - 30)
    with pytest.raises(RateLimited):
        limiter.acquire("org-a")
    assert limiter.stats("org-a")["hold_until"] == pytest.approx(durable + 60.5, abs=1e-5)
    # and an organisation whose last call is a window old is not held.
    limiter.release(limiter.acquire("org-b", last_call_at=durable - 61))
    conn.close()


def test_call_in_flight_across_state_loss_still_counts(flush_url: str) -> None:
    conn = redis.Redis.from_url(flush_url)
    limiter = XeroRateLimiter(conn, per_minute=2, max_wait_seconds=0, key_prefix="inflight")
    permit = limiter.acquire("org-a")
    conn.flushdb()
    limiter.release(permit)  # re-inserts itself in the minute log
    assert limiter.stats("org-a")["calls_in_window"] == 1
    limiter.release(limiter.acquire("org-a", last_call_at=None))
    with pytest.raises(RateLimited):
        limiter.acquire("org-a")
    # That release did not recreate the state, so its time still reads as a forgotten call.
    conn.flushdb()
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-a", last_call_at=permit.released_at)
    assert caught.value.reason == "minute"
    conn.close()


def test_rolled_back_state_is_detected(client: redis.Redis, prefix: str) -> None:
    """A snapshot restore brings back old state that misses the latest calls."""
    limiter = make(client, prefix, per_minute=60)
    with limiter.call("org-a") as first:
        pass
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    snapshot = {k: client.dump(k) for k in keys}
    for _ in range(5):
        with limiter.call("org-a", last_call_at=first.released_at) as latest:
            pass
    for key, value in snapshot.items():  # roll back
        assert isinstance(value, bytes)
        client.restore(key, 0, value, replace=True)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire("org-a", last_call_at=latest.released_at)
    assert caught.value.reason == "minute"


# -- many processes -----------------------------------------------------------------------------


def _hammer(
    url: str,
    prefix: str,
    params: dict[str, Any],
    tenants: list[str],
    seconds: float,
    counters: dict[str, tuple[Synchronized[int], Synchronized[int]]],
    durable: dict[str, Synchronized[float]] | None,
    out: str,
) -> None:
    """Worker: call the limiter for `seconds`, recording every admission from its own side."""
    conn = redis.Redis.from_url(url)
    limiter = XeroRateLimiter(conn, key_prefix=prefix, **params)
    rng = random.Random(os.getpid())
    records: list[tuple[str, float, float]] = []
    refused: dict[str, int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tenant = rng.choice(tenants)
        last = None
        if durable is not None and durable[tenant].value > 0:
            last = durable[tenant].value
        try:
            with limiter.call(tenant, last_call_at=last) as permit:
                current, peak = counters[tenant]
                with current.get_lock():
                    current.value += 1
                    if current.value > peak.value:
                        peak.value = current.value
                time.sleep(rng.uniform(0.0, 0.004))  # "HTTP"
                with current.get_lock():
                    current.value -= 1
        except RateLimited as exc:
            refused[exc.reason] = refused.get(exc.reason, 0) + 1
            time.sleep(0.002)
            continue
        except redis.RedisError:
            time.sleep(0.002)
            continue
        assert permit.released_at is not None
        records.append((tenant, permit.admitted_at, permit.released_at))
        if durable is not None:
            with durable[tenant].get_lock():  # "UPDATE connection SET last_call_at = ..."
                durable[tenant].value = max(durable[tenant].value, permit.released_at)
    Path(out).write_text(json.dumps({"records": records, "refused": refused}))


def _run_hammer(
    tmp_path: Path,
    url: str,
    prefix: str,
    params: dict[str, Any],
    tenants: list[str],
    *,
    processes: int,
    seconds: float,
    durable: bool = False,
    during: Any = None,
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, int], dict[str, int]]:
    counters = {t: (CTX.Value("i", 0), CTX.Value("i", 0)) for t in tenants}
    stores = {t: CTX.Value("d", 0.0) for t in tenants} if durable else None
    workers = []
    for i in range(processes):
        out = str(tmp_path / f"worker-{i}.json")
        args = (url, prefix, params, tenants, seconds, counters, stores, out)
        proc = CTX.Process(target=_hammer, args=args)
        proc.start()
        workers.append((proc, out))
    if during is not None:
        during()
    for proc, _ in workers:
        proc.join(timeout=seconds + 30)
        assert proc.exitcode == 0
    intervals: dict[str, list[tuple[float, float]]] = {t: [] for t in tenants}
    refused: dict[str, int] = {}
    for _, out in workers:
        data = json.loads(Path(out).read_text())
        for tenant, admitted, released in data["records"]:
            intervals[tenant].append((admitted, released))
        for reason, count in data["refused"].items():
            refused[reason] = refused.get(reason, 0) + count
    peaks = {t: counters[t][1].value for t in tenants}
    return intervals, peaks, refused


def test_eight_processes_three_organisations_stay_within_every_limit(
    tmp_path: Path, redis_url: str, client: redis.Redis, prefix: str
) -> None:
    window = 2.0
    params = {"per_minute": 60, "concurrent": 5, "window_seconds": window, "max_wait_seconds": 0.2}
    tenants = ["org-1", "org-2", "org-3"]
    intervals, peaks, refused = _run_hammer(
        tmp_path, redis_url, prefix, params, tenants, processes=8, seconds=4.5
    )
    for tenant in tenants:
        calls = intervals[tenant]
        created = client.hget(f"{prefix}:t:{tenant}:state", "created")
        assert created is not None and float(created) <= min(a for a, _ in calls), (
            "the limiter's state was recreated mid-run: something flushed this Redis database"
        )
        assert len(calls) > 60, (tenant, len(calls))
        # Saturated (a full window was reached) and never over, whatever the latency.
        assert max_in_window(calls, window) == 60, tenant
        assert 1 <= peaks[tenant] <= 5, tenant
        assert max_overlap(calls) <= 5, tenant
    assert refused.get("minute", 0) > 0


def test_killed_holders_do_not_deadlock(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """Six workers die (os._exit) while holding a slot; the others still finish their calls."""
    params: dict[str, Any] = {
        "per_minute": 10_000,
        "concurrent": 5,
        "window_seconds": 1.0,
        "slot_ttl_seconds": 0.5,
        "max_wait_seconds": 2.0,
    }
    current, peak = CTX.Value("i", 0), CTX.Value("i", 0)
    done = CTX.Value("i", 0)

    def enter() -> None:
        with current.get_lock():
            current.value += 1
            peak.value = max(peak.value, current.value)

    def leave() -> None:
        with current.get_lock():
            current.value -= 1

    def victim() -> None:
        limiter = XeroRateLimiter(redis.Redis.from_url(redis_url), key_prefix=prefix, **params)
        limiter.acquire("org-a")
        enter()
        time.sleep(0.05)
        leave()  # the process dies: its TCP connection to Xero closes with it
        os._exit(9)  # never releases the slot

    def survivor() -> None:
        limiter = XeroRateLimiter(redis.Redis.from_url(redis_url), key_prefix=prefix, **params)
        completed = attempts = 0
        while completed < 40 and attempts < 2_000:
            attempts += 1
            try:
                with limiter.call("org-a"):
                    enter()
                    time.sleep(0.002)
                    leave()
            except RateLimited:
                continue
            completed += 1
            with done.get_lock():
                done.value += 1
        os._exit(0 if completed == 40 else 1)

    victims = [CTX.Process(target=victim) for _ in range(6)]
    survivors = [CTX.Process(target=survivor) for _ in range(6)]
    for proc in victims:
        proc.start()
    for proc in victims:
        proc.join(timeout=30)
    for proc in survivors:
        proc.start()
    for proc in survivors:
        proc.join(timeout=60)
    assert [p.exitcode for p in victims] == [9] * 6
    assert [p.exitcode for p in survivors] == [0] * 6
    assert done.value == 240
    assert 1 <= peak.value <= 5


def test_flushdb_mid_run_does_not_overshoot(tmp_path: Path, flush_url: str) -> None:
    window = 1.5
    params = {"per_minute": 60, "concurrent": 5, "window_seconds": window, "max_wait_seconds": 0.2}
    tenants = ["org-1", "org-2", "org-3"]
    flushed_at: list[float] = []

    def flush_mid_run() -> None:
        conn = redis.Redis.from_url(flush_url)
        time.sleep(2.2)
        now_s, now_us = conn.time()
        conn.flushdb()  # every limiter key is gone, workers keep going
        flushed_at.append(now_s + now_us / 1e6)
        conn.close()

    intervals, peaks, _ = _run_hammer(
        tmp_path,
        flush_url,
        "flush",
        params,
        tenants,
        processes=8,
        seconds=5.0,
        durable=True,
        during=flush_mid_run,
    )
    flush = flushed_at[0]
    for tenant in tenants:
        calls = intervals[tenant]
        before = [c for c in calls if c[0] < flush]
        after = [c for c in calls if c[0] > flush]
        assert max_in_window(before, window) == 60, tenant  # the window was full at the flush
        assert len(after) > 0, tenant  # and calls resumed after it
        assert max_in_window(calls, window) <= 60, tenant
        assert peaks[tenant] <= 5, tenant


def test_permit_is_a_plain_record_and_the_exception_pickles() -> None:
    permit = CallPermit(tenant_id="t", token="x", admitted_at=1.0)
    assert (permit.released_at, permit.lease_expired) == (None, False)
    exc = pickle.loads(pickle.dumps(RateLimited("day", 12.5, "org-a")))  # noqa: S301
    assert (exc.reason, exc.retry_at, exc.tenant_id) == ("day", 12.5, "org-a")
