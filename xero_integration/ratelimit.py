"""A Xero rate limiter shared by every worker process, kept in Redis.

Every Xero API call goes through :meth:`XeroRateLimiter.call`. The limiter enforces, per Xero
organisation (tenant id), the limits in xero-api-notes.md §1 and reliability-notes.md §3:

* ``minute``: at most ``per_minute`` calls in any rolling window of ``window_seconds``;
* ``concurrent``: at most ``concurrent`` calls in flight, as leases that expire;
* ``day``: the daily budget last reported in ``X-DayLimit-Remaining``, minus a reserve;
* ``paused``: a pause set after a 429, from ``Retry-After``;

and, across all organisations, ``app``: at most ``app_per_minute`` calls per window (plus an
app-wide pause after an app-minute 429). Each organisation has its own keys, so one busy
organisation never makes another wait; only the app-wide limit is shared, as it is at Xero.

Algorithm (all decisions are made in Lua on the Redis clock, ``redis.call('TIME')``):

* The minute log is a sorted set of call tokens scored by **the latest time the call can have
  reached Xero**. While a call is in flight that bound is its lease expiry (admission +
  ``slot_ttl_seconds``); when it is released the score becomes the release time, because a
  call whose response has come back has certainly arrived. A call counts against the window
  while its score is later than ``now - window``; a new call is admitted when fewer than
  ``per_minute`` calls count.

  Why this is safe: Xero counts a call at its arrival time ``x``, with ``admitted <= x <=
  released`` (on one clock; Xero's clock may be offset from Redis's, offsets cancel out).
  Suppose ``per_minute + 1`` calls arrived within one rolling window ``(s - W, s]``, and let
  ``n`` be the one admitted last, at ``t_n <= x_n <= s``. Every other call ``k`` in that set
  was admitted before ``t_n`` and has ``released_k >= x_k > s - W >= t_n - W`` (or was still
  in flight), so all ``per_minute`` of them counted at ``t_n`` and ``n`` would have been
  refused. Network latency is therefore covered exactly, not by a guessed margin: a call
  holds its place for one window *after it completes*, so the sustained rate with a backlog
  is ``per_minute`` per (window + call duration + ``margin_seconds``), about 59/minute for
  sub-second calls. ``margin_seconds`` (default window/120, 0.5 s a minute) only absorbs clock
  granularity at Xero. The assumption is that a call ends (response or timeout) before its
  lease expires: keep ``slot_ttl_seconds`` above the HTTP timeout.
* Concurrency is a second sorted set of the same tokens scored by lease expiry; expired leases
  are purged before every admission, so a worker killed with SIGKILL frees its slot after
  ``slot_ttl_seconds``. Release removes only its own token: a stale release does nothing to
  other holders.
* Redis state loss (restart without persistence, FLUSHDB/FLUSHALL, a rolled-back snapshot):
  the per-organisation state hash records when this state began (``created``) and the latest
  time it handed out (``now``): every admission and release time it produced lies in between.
  The caller keeps a durable copy of its last call's :attr:`CallPermit.released_at` in
  PostgreSQL and passes it as ``last_call_at``. A value outside ``[created, now]`` is a call
  this state has forgotten (or never saw), so the window is treated as full until that call is
  one window old ("hold"); the hold is stored, so every worker respects the freshest value any
  of them passed. A call in flight across the loss re-inserts itself into the log when
  released. Without ``last_call_at`` a missing state can only be taken as "no recent calls"
  (Redis cannot tell a first call from a lost history), so pass it.
* Daily budget: ``record_response`` stores ``X-DayLimit-Remaining`` (minus the organisation's
  other calls in flight); each admission decrements it. At or below ``day_reserve`` the
  organisation is refused until the stored value goes stale (``day_recheck_seconds``, an hour
  by default); after that one response refreshes it, or a day 429 sets an exact pause.

Time scale: every duration that models Xero's time (``window_seconds``, ``Retry-After`` given
to :meth:`pause`, ``day_recheck_seconds``) is scaled by ``window_seconds / 60``, so a limiter
with ``window_seconds=6`` matches a sandbox running 10x fast. ``slot_ttl_seconds`` and
``max_wait_seconds`` are real seconds (HTTP timeouts and worker patience do not scale).

This module depends only on redis-py and the standard library; Django settings are read by
:func:`limiter_from_settings` only. It needs one Redis server (not Redis Cluster: the scripts
touch the app-wide keys and the organisation's keys together).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

REASONS: Final = ("minute", "concurrent", "day", "paused", "app")
_ACQUIRE_KEYS: Final = ("log", "slots", "state", "pause", "day", "app_log", "app_pause")
# A full set of slots frees when a call ends, which is usually soon: poll it often.
_CONCURRENT_POLL_SECONDS: Final = 0.02

# Shared Lua helpers. Numbers passed to redis.call are formatted explicitly: Lua's default
# conversion keeps only 14 significant digits (0.1 ms of an epoch time).
_LUA_PRELUDE = """
local function fmt(x) return string.format('%.6f', x) end
local function redis_now(state_key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local last = redis.call('HGET', state_key, 'now')
  if last and tonumber(last) > now then now = tonumber(last) end
  return now
end
local function num(v) if v then return tonumber(v) end return nil end
"""

# KEYS: 1 log, 2 slots, 3 state, 4 pause, 5 day, 6 app log, 7 app pause
# ARGV: 1 token, 2 per_minute, 3 concurrent, 4 app_per_minute, 5 effective window,
#       6 slot ttl, 7 day reserve, 8 last_call_at ('' = none), 9 state ttl ms,
#       10 concurrent retry hint
# Returns {1, admitted_at} or {0, reason, retry_at, now}.
_ACQUIRE = (
    _LUA_PRELUDE
    + """
local token = ARGV[1]
local limit, conc, app_limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, ttl, reserve = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local last_call = num(ARGV[8] ~= '' and ARGV[8] or nil)
local state_ttl_ms, conc_hint = tonumber(ARGV[9]), tonumber(ARGV[10])

local now = redis_now(KEYS[3])
local st = redis.call('HMGET', KEYS[3], 'created', 'now', 'hold')
local created, seen, hold = num(st[1]), num(st[2]), num(st[3]) or 0
if not created then
  created = now
  redis.call('HSET', KEYS[3], 'created', fmt(created))
end
-- Fail closed: every time this state handed out lies in [created, seen]; a durable call time
-- outside it is a call the state has lost (flushed, restarted, or rolled back to a snapshot).
if last_call and (last_call < created or seen == nil or last_call > seen) then
  if last_call + window > hold then
    hold = last_call + window
    redis.call('HSET', KEYS[3], 'hold', fmt(hold))
  end
end
redis.call('HSET', KEYS[3], 'now', fmt(now))
redis.call('PEXPIRE', KEYS[3], state_ttl_ms)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - window))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now))
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', fmt(now - window))

local reason, retry = nil, 0
local function refuse(r, at)
  if reason == nil or at > retry then reason, retry = r, at end
end

local p = num(redis.call('GET', KEYS[4]))
if p and p > now then refuse('paused', p) end
local ap = num(redis.call('GET', KEYS[7]))
if ap and ap > now then refuse('app', ap) end
if hold > now then refuse('minute', hold) end

local day = redis.call('HMGET', KEYS[5], 'remaining', 'until')
if day[1] and tonumber(day[1]) <= reserve then refuse('day', tonumber(day[2])) end

local function window_retry(key, n, cap)
  local k = n - cap  -- 0-based rank of the entry whose expiry frees the first place
  local e = redis.call('ZRANGE', key, k, k, 'WITHSCORES')
  local s = tonumber(e[2])
  if s > now then s = now end  -- still in flight: it counts for a window after it ends
  return s + window
end
local app_n = redis.call('ZCARD', KEYS[6])
if app_n >= app_limit then refuse('app', window_retry(KEYS[6], app_n, app_limit)) end
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then refuse('minute', window_retry(KEYS[1], n, limit)) end
local held = redis.call('ZCARD', KEYS[2])
if held >= conc then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local at = tonumber(first[2])
  if at > now + conc_hint then at = now + conc_hint end
  refuse('concurrent', at)
end

if reason then return {0, reason, fmt(retry), fmt(now)} end

local expiry = fmt(now + ttl)
local keep_ms = math.ceil((ttl + window) * 1000) + 1000
redis.call('ZADD', KEYS[1], expiry, token)
redis.call('PEXPIRE', KEYS[1], keep_ms)
redis.call('ZADD', KEYS[2], expiry, token)
redis.call('PEXPIRE', KEYS[2], keep_ms)
redis.call('ZADD', KEYS[6], expiry, token)
redis.call('PEXPIRE', KEYS[6], keep_ms)
if day[1] then redis.call('HINCRBY', KEYS[5], 'remaining', -1) end
return {1, fmt(now)}
"""
)

# KEYS: 1 log, 2 slots, 3 state, 4 app log; ARGV: 1 token, 2 effective window, 3 state ttl ms
# Returns {held (1/0), released_at}.
_RELEASE = (
    _LUA_PRELUDE
    + """
local token, window = ARGV[1], tonumber(ARGV[2])
local now = redis_now(KEYS[3])
local held = redis.call('ZREM', KEYS[2], token)
-- The call has reached Xero by now: it counts for one window from here. Re-inserting when the
-- entry is gone keeps a call that was in flight across a Redis state loss counted.
local keep_ms = math.ceil(window * 1000) + 1000
redis.call('ZADD', KEYS[1], fmt(now), token)
if redis.call('PTTL', KEYS[1]) < keep_ms then redis.call('PEXPIRE', KEYS[1], keep_ms) end
redis.call('ZADD', KEYS[4], fmt(now), token)
if redis.call('PTTL', KEYS[4]) < keep_ms then redis.call('PEXPIRE', KEYS[4], keep_ms) end
-- Never (re)create the state hash here: a missing hash must still look missing to acquire.
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'now', fmt(now))
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]))
end
return {held, fmt(now)}
"""
)

# KEYS: 1 slots, 2 day, 3 state; ARGV: 1 day_remaining ('' = none), 2 minute_remaining,
# 3 app_minute_remaining, 4 day recheck seconds
_RECORD = (
    _LUA_PRELUDE
    + """
local now = redis_now(KEYS[3])
if ARGV[1] ~= '' then
  local others = redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now), '+inf') - 1
  if others < 0 then others = 0 end
  local recheck = tonumber(ARGV[4])
  redis.call('HSET', KEYS[2], 'remaining', tonumber(ARGV[1]) - others, 'at', fmt(now),
             'until', fmt(now + recheck))
  redis.call('PEXPIRE', KEYS[2], math.ceil(recheck * 1000))
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[3], 'minute_remaining', ARGV[2]) end
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], 'app_minute_remaining', ARGV[3]) end
end
return fmt(now)
"""
)

# KEYS: 1 pause key (organisation or app), 2 state; ARGV: 1 seconds. Returns paused-until.
_PAUSE = (
    _LUA_PRELUDE
    + """
local now = redis_now(KEYS[2])
local untl = now + tonumber(ARGV[1])
local cur = num(redis.call('GET', KEYS[1]))
if cur and cur > untl then untl = cur end
redis.call('SET', KEYS[1], fmt(untl), 'PXAT', math.ceil(untl * 1000) + 1)
return fmt(untl)
"""
)

# KEYS: 1 log, 2 slots, 3 state, 4 pause, 5 day, 6 app log, 7 app pause; ARGV: 1 window
_STATS = (
    _LUA_PRELUDE
    + """
local now = redis_now(KEYS[3])
local w = tonumber(ARGV[1])
local lower = '(' .. fmt(now - w)
return {
  fmt(now),
  redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf'),
  redis.call('ZCOUNT', KEYS[1], lower, '+inf'),
  redis.call('ZCOUNT', KEYS[6], lower, '+inf'),
  redis.call('HGET', KEYS[5], 'remaining') or '',
  redis.call('GET', KEYS[4]) or '',
  redis.call('GET', KEYS[7]) or '',
  redis.call('HGET', KEYS[3], 'hold') or '',
  redis.call('HGET', KEYS[3], 'minute_remaining') or '',
}
"""
)


class RateLimited(Exception):
    """The call may not start now; the caller should park the job until ``retry_at``.

    ``reason`` is one of ``minute``, ``concurrent``, ``day``, ``paused``, ``app``: the limit
    that binds longest. ``retry_at`` is epoch seconds on the Redis clock (which is wall-clock
    time on a normally synchronised server); it is the earliest moment worth retrying, not a
    promise (another worker may take the place first).
    """

    def __init__(self, reason: str, retry_at: float, tenant_id: str) -> None:
        super().__init__(
            f"Xero rate limit ({reason}) for tenant {tenant_id}: retry at {retry_at:.3f}"
        )
        self.reason = reason
        self.retry_at = retry_at
        self.tenant_id = tenant_id

    def __reduce__(self) -> tuple[type[RateLimited], tuple[str, float, str]]:
        return (type(self), (self.reason, self.retry_at, self.tenant_id))

    @property
    def retry_at_datetime(self) -> datetime:
        """``retry_at`` as an aware UTC datetime (for ``sync_job.not_before``)."""
        return datetime.fromtimestamp(self.retry_at, tz=UTC)


@dataclass
class CallPermit:
    """One admitted call. Times are epoch seconds on the Redis clock.

    After the ``with`` block, store ``released_at`` durably (e.g. on the connection row) and
    pass it back as ``last_call_at``: that is what makes Redis state loss fail closed.
    ``lease_expired`` is True when the slot had already expired at release (the call took
    longer than ``slot_ttl_seconds``).
    """

    tenant_id: str
    token: str
    admitted_at: float
    released_at: float | None = None
    lease_expired: bool = False


class XeroRateLimiter:
    """Per-organisation Xero limits shared by all processes through one Redis server.

    Args:
        redis: the client (any DB; keys live under ``key_prefix``).
        per_minute: calls per organisation per rolling window (Xero: 60).
        concurrent: calls in flight per organisation (Xero: 5).
        app_per_minute: calls per window across all organisations (Xero: 10,000).
        window_seconds: the length of Xero's minute in real seconds (6 for a 10x sandbox).
        slot_ttl_seconds: lease length of a concurrency slot, real seconds; must exceed the HTTP
            timeout (a call must end, by response or timeout, before its lease expires).
        day_reserve: refuse calls once the daily budget left is at or below this. Within about
            ``concurrent`` calls of accuracy (other calls in flight at a response are counted
            as not yet seen by Xero), so a reserve of ``concurrent`` avoids day 429s.
        max_wait_seconds: how long ``call``/``acquire`` may sleep (in small steps) for a place
            before raising :class:`RateLimited`; 0 never waits.
        key_prefix: Redis key namespace.
        margin_seconds: added to the window for clock granularity at Xero; default
            ``window_seconds / 120``.
        day_recheck_seconds: how long an exhausted daily budget is believed before a call is
            let through to refresh it; default one (scaled) hour.
        poll_seconds: longest single sleep while waiting.
    """

    def __init__(
        self,
        redis: redis.Redis,
        *,
        per_minute: int = 60,
        concurrent: int = 5,
        app_per_minute: int = 10_000,
        window_seconds: float = 60.0,
        slot_ttl_seconds: float = 120.0,
        day_reserve: int = 0,
        max_wait_seconds: float = 5.0,
        key_prefix: str = "bms:xero-rl",
        margin_seconds: float | None = None,
        day_recheck_seconds: float | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        if per_minute < 1 or concurrent < 1 or app_per_minute < 1:
            raise ValueError("limits must be at least 1")
        if window_seconds <= 0 or slot_ttl_seconds <= 0 or poll_seconds <= 0:
            raise ValueError("window_seconds, slot_ttl_seconds and poll_seconds must be positive")
        self.redis = redis
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.app_per_minute = app_per_minute
        self.window_seconds = float(window_seconds)
        self.time_scale = self.window_seconds / 60.0  # real seconds per Xero second
        self.margin_seconds = (
            self.window_seconds / 120.0 if margin_seconds is None else float(margin_seconds)
        )
        self.slot_ttl_seconds = float(slot_ttl_seconds)
        self.day_reserve = day_reserve
        self.day_recheck_seconds = (
            3600.0 * self.time_scale if day_recheck_seconds is None else float(day_recheck_seconds)
        )
        self.max_wait_seconds = max(0.0, float(max_wait_seconds))
        self.poll_seconds = float(poll_seconds)
        self.key_prefix = key_prefix
        self._effective_window = self.window_seconds + self.margin_seconds
        self._state_ttl_ms = math.ceil(10 * (self._effective_window + self.slot_ttl_seconds) * 1000)
        client = redis  # the parameter keeps the documented name; it shadows the module here
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._record = client.register_script(_RECORD)
        self._pause = client.register_script(_PAUSE)
        self._stats = client.register_script(_STATS)

    # -- keys ------------------------------------------------------------------------------

    def _tenant_keys(self, tenant_id: str) -> dict[str, str]:
        if not tenant_id:
            raise ValueError("tenant_id is required")
        base = f"{self.key_prefix}:t:{tenant_id}"
        return {
            "log": f"{base}:log",
            "slots": f"{base}:slots",
            "state": f"{base}:state",
            "pause": f"{base}:pause",
            "day": f"{base}:day",
            "app_log": f"{self.key_prefix}:app:log",
            "app_pause": f"{self.key_prefix}:app:pause",
        }

    # -- calls -----------------------------------------------------------------------------

    @contextmanager
    def call(self, tenant_id: str, *, last_call_at: float | None = None) -> Iterator[CallPermit]:
        """Hold a place for one Xero call to ``tenant_id`` for the duration of the block.

        Acquires a minute admission and a concurrency slot, waiting up to
        ``max_wait_seconds`` when a place is near, else raises :class:`RateLimited` (before the
        block runs). The slot is released when the block exits, even on error; put only the
        HTTP call (and reading its headers) inside.

        ``last_call_at``: the durable copy of :attr:`CallPermit.released_at` of this
        organisation's latest call (None if it never called). It must be a time this limiter
        produced (the Redis clock), never the worker's ``time.time()``: a value the limiter's
        state does not account for holds the organisation for a window.
        """
        permit = self.acquire(tenant_id, last_call_at=last_call_at)
        try:
            yield permit
        finally:
            try:
                self.release(permit)
            except redis.RedisError:
                # The lease expires by itself; do not hide the block's own outcome.
                logger.warning("xero rate limiter: release failed for tenant %s", tenant_id)

    def acquire(self, tenant_id: str, *, last_call_at: float | None = None) -> CallPermit:
        """Admit one call or raise :class:`RateLimited`; pair with :meth:`release`.

        Prefer :meth:`call`. Redis errors propagate (treat them as transient).
        """
        keys = self._tenant_keys(tenant_id)
        key_list = [keys[k] for k in _ACQUIRE_KEYS]
        deadline: float | None = None
        while True:
            token = secrets.token_hex(16)
            args: list[str | int | float] = [
                token,
                self.per_minute,
                self.concurrent,
                self.app_per_minute,
                repr(self._effective_window),
                repr(self.slot_ttl_seconds),
                self.day_reserve,
                "" if last_call_at is None else repr(float(last_call_at)),
                self._state_ttl_ms,
                repr(min(self.poll_seconds, _CONCURRENT_POLL_SECONDS)),
            ]
            result: list[Any] = self._acquire(keys=key_list, args=args)
            if int(result[0]) == 1:
                return CallPermit(tenant_id=tenant_id, token=token, admitted_at=float(result[1]))
            reason = _text(result[1])
            retry_at = float(result[2])
            now = float(result[3])
            if deadline is None:
                deadline = now + self.max_wait_seconds
            if retry_at > deadline:
                raise RateLimited(reason, retry_at, tenant_id)
            time.sleep(min(self.poll_seconds, max(retry_at - now, 0.001)))

    def release(self, permit: CallPermit) -> None:
        """Free the permit's slot and start its one-window hold in the minute log.

        Idempotent in effect: releasing a permit whose lease expired (or twice) never frees
        another holder's slot. Sets ``permit.released_at`` and ``permit.lease_expired``.
        """
        keys = self._tenant_keys(permit.tenant_id)
        result: list[Any] = self._release(
            keys=[keys["log"], keys["slots"], keys["state"], keys["app_log"]],
            args=[permit.token, repr(self._effective_window), self._state_ttl_ms],
        )
        held = int(result[0]) == 1
        if permit.released_at is None:
            permit.lease_expired = not held
            if not held:
                logger.warning(
                    "xero rate limiter: lease of tenant %s expired before release", permit.tenant_id
                )
        permit.released_at = float(result[1])

    # -- responses and pauses --------------------------------------------------------------

    def record_response(
        self,
        tenant_id: str,
        *,
        day_remaining: int | None,
        minute_remaining: int | None,
        app_minute_remaining: int | None,
    ) -> None:
        """Record Xero's ``X-DayLimit-Remaining`` / ``X-MinLimit-Remaining`` /
        ``X-AppMinLimit-Remaining`` after a response (None when a header is absent).

        The daily figure drives the ``day`` refusal; the minute figures are informational
        (``stats``). Call it from inside the ``with`` block or just after it.
        """
        keys = self._tenant_keys(tenant_id)
        self._record(
            keys=[keys["slots"], keys["day"], keys["state"]],
            args=[
                "" if day_remaining is None else int(day_remaining),
                "" if minute_remaining is None else int(minute_remaining),
                "" if app_minute_remaining is None else int(app_minute_remaining),
                repr(self.day_recheck_seconds),
            ],
        )

    def pause(self, tenant_id: str, *, seconds: float, problem: str) -> float:
        """Pause the organisation after a 429 and return the pause end (Redis-clock epoch).

        ``seconds`` is the ``Retry-After`` value in Xero seconds (scaled by
        ``window_seconds / 60``); ``problem`` is ``X-Rate-Limit-Problem``. An app-minute problem
        (``appminute``/``app``) pauses every organisation. A pause is only ever extended. The
        caller stores the returned time durably and parks the job (``waiting``, ``not_before``);
        a 429 is not a failure.
        """
        keys = self._tenant_keys(tenant_id)
        target = keys["pause"]
        if problem.strip().lower().replace("-", "").replace("_", "") in {"appminute", "app"}:
            target = keys["app_pause"]
        real_seconds = max(0.0, float(seconds)) * self.time_scale
        until = float(self._pause(keys=[target, keys["state"]], args=[repr(real_seconds)]))
        logger.info(
            "xero rate limiter: tenant %s paused for %.3fs (%s)", tenant_id, real_seconds, problem
        )
        return until

    def paused_until(self, tenant_id: str) -> float | None:
        """The end of the organisation's (or the app-wide) pause, or None when not paused."""
        value = self.stats(tenant_id)["paused_until"]
        return None if value is None else float(value)

    def stats(self, tenant_id: str) -> dict[str, float | int | None]:
        """A snapshot: ``now``, ``in_flight``, ``calls_in_window``, ``app_calls_in_window``,
        ``day_remaining``, ``paused_until``, ``hold_until`` (state-loss hold) and
        ``minute_remaining`` (last ``X-MinLimit-Remaining``). Absent values are None."""
        keys = self._tenant_keys(tenant_id)
        key_list = [keys[k] for k in _ACQUIRE_KEYS]
        raw: list[Any] = self._stats(keys=key_list, args=[repr(self._effective_window)])
        now = float(raw[0])
        pauses = [float(v) for v in (_text(raw[5]), _text(raw[6])) if v and float(v) > now]
        hold = _text(raw[7])
        return {
            "now": now,
            "in_flight": int(raw[1]),
            "calls_in_window": int(raw[2]),
            "app_calls_in_window": int(raw[3]),
            "day_remaining": int(_text(raw[4])) if _text(raw[4]) else None,
            "paused_until": max(pauses) if pauses else None,
            "hold_until": float(hold) if hold and float(hold) > now else None,
            "minute_remaining": int(_text(raw[8])) if _text(raw[8]) else None,
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def limiter_from_settings() -> XeroRateLimiter:
    """Build the limiter from Django settings (``XERO_RATE_LIMIT_*``).

    The Redis URL is ``XERO_RATE_LIMIT_REDIS_URL``, else ``CELERY_BROKER_URL`` when it is a
    ``redis://``/``rediss://`` URL. Leases last ``XERO_HTTP_TIMEOUT_SECONDS`` + 30 s.
    """
    url = getattr(settings, "XERO_RATE_LIMIT_REDIS_URL", "") or ""
    if not url:
        broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
        if broker.startswith(("redis://", "rediss://")):
            url = broker
    if not url:
        raise ValueError(
            "the Xero rate limiter needs Redis: set XERO_RATE_LIMIT_REDIS_URL "
            "(or a redis:// CELERY_BROKER_URL)"
        )
    http_timeout = float(getattr(settings, "XERO_HTTP_TIMEOUT_SECONDS", 30.0))
    return XeroRateLimiter(
        redis.Redis.from_url(url),
        per_minute=int(getattr(settings, "XERO_RATE_LIMIT_PER_MINUTE", 60)),
        concurrent=int(getattr(settings, "XERO_RATE_LIMIT_CONCURRENT", 5)),
        app_per_minute=int(getattr(settings, "XERO_RATE_LIMIT_APP_PER_MINUTE", 10_000)),
        window_seconds=float(getattr(settings, "XERO_RATE_LIMIT_WINDOW_SECONDS", 60.0)),
        slot_ttl_seconds=http_timeout + 30.0,
    )
