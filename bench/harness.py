"""A real-process harness for the sync benchmarks (and the fault tests that will reuse it).

Everything BMS talks to is a real process over real sockets: a scratch PostgreSQL database, the
Xero sandbox as a subprocess (`python -m xero_sandbox`), Celery workers and beat as
subprocesses, Redis. The benchmark process itself is configured as a BMS process too (same
environment as the workers), so it can create data with the ORM, run BMS's OAuth flow, enqueue
jobs and read the job table.

Typical use::

    from bench import harness  # or: import harness (when run as bench/x_bench.py)

    with harness.Stack(name="customers", time_scale=4) as stack:
        stack.setup_django()                    # env -> django.setup() -> migrate scratch DB
        entity = ...                            # ORM from here on
        stack.connect_entities([entity])        # BMS's real OAuth flow against the sandbox
        workers = stack.start_workers(count=1, concurrency=5)
        stack.start_sweeper()                   # or stack.start_beat()
        ... enqueue ...
        stack.wait_for_jobs(timeout=300)
        print(stack.sandbox.calls(since=seq))   # counted from the sandbox's request log
        print(workers.peak_rss_mb())            # VmHWM of every worker process

`Stack` cleans up on exit: workers, beat, web and sandbox stopped (SIGTERM, then SIGKILL),
the scratch database dropped (unless keep_db), its Redis DB flushed at start.

For fault tests: `stack.workers.kill(i)` (SIGKILL one worker's whole process group),
`stack.workers.restart(i)`, `stack.start_web()`, `stack.start_beat()`, and `RedisServer` (a
private redis-server on its own port that can be stopped and restarted; pass its URL as
`redis_url`), `Stack.unfinished_jobs()`, `Sandbox.faults_add()`.

Time scale: with `time_scale=S` the sandbox clock runs S times faster, BMS's limiter window is
60/S seconds (XERO_RATE_LIMIT_WINDOW_SECONDS), the in-process sweeper runs every 30/S seconds
(beat's 30 s, scaled) and a token keeper makes BMS refresh its access token before the
sandbox's (scaled) 30 minutes run out. Figures "per minute" are per sandbox minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit, urlunparse

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv/bin/python")
CELERY = str(ROOT / ".venv/bin/celery")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
REDIRECT_URI = "http://127.0.0.1:8000/xero/callback/"
DEMO_CLIENT_ID = "BMS-DEMO-CLIENT"
DEMO_CLIENT_SECRET = "bms-demo-secret"  # noqa: S105 - the sandbox's public demo secret
# The sandbox's default webhook URL points at a BMS web server the benches do not run.
NO_WEBHOOK = ""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(check: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- Scratch database -------------------------------------------------------------------------


@dataclass
class ScratchDatabase:
    """A PostgreSQL database created for one run and dropped after it."""

    name: str
    server_url: str = DEFAULT_PG

    @property
    def maintenance_url(self) -> str:
        parsed = urlparse(self.server_url)
        return urlunparse(parsed._replace(scheme="postgresql", path="/postgres"))

    @property
    def url(self) -> str:
        parsed = urlparse(self.server_url)
        return urlunparse(parsed._replace(scheme="postgres", path=f"/{self.name}"))

    def create(self) -> None:
        self.drop()
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# --- Managed subprocesses ---------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _kb(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                stack += [int(p) for p in (task / "children").read_text().split()]
    return found


class ManagedProcess:
    """One subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ManagedProcess:
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our own argv
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int, *, group: bool = True) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.popen.pid, sig)
            else:
                self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole group (a crashed machine: no cleanup, no acks)."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def stop(self, *, timeout: float = 20.0) -> int | None:
        """SIGTERM (Celery: warm shutdown), then SIGKILL after `timeout`."""
        if self.popen is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM, group=False)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        # Whatever the main process left behind in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class MemoryMonitor:
    """Polls VmHWM/VmRSS of every process in some process trees; keeps the peak per pid.

    VmHWM is the kernel's own high-water mark of a process's RSS, so polling only has to see
    each process once before it exits; the poll interval matters for processes that live
    shorter than it (none here: Celery's pool processes live as long as the worker).
    """

    def __init__(self, roots: Callable[[], list[int]], *, interval: float = 0.5) -> None:
        self._roots = roots
        self.interval = interval
        self.peak_kb: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-monitor", daemon=True)

    def start(self) -> MemoryMonitor:
        self._thread.start()
        return self

    def sample(self) -> None:
        for root in self._roots():
            for pid in process_tree(root):
                status = _proc_status(pid)
                if not status:
                    continue
                hwm = _kb(status.get("VmHWM"))
                if hwm > self.peak_kb.get(pid, 0):
                    self.peak_kb[pid] = hwm
                self.names.setdefault(pid, f"{status.get('Name', '?')} (root {root})")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def peak_mb(self) -> float:
        return max(self.peak_kb.values(), default=0) / 1024

    def report(self) -> list[tuple[int, float, str]]:
        return sorted(
            ((pid, kb / 1024, self.names.get(pid, "")) for pid, kb in self.peak_kb.items()),
            key=lambda row: -row[1],
        )


class Workers:
    """N Celery worker instances (prefork, `concurrency` pool processes each)."""

    def __init__(self, stack: Stack, *, count: int, concurrency: int, prefix: str) -> None:
        self.stack = stack
        self.concurrency = concurrency
        self.processes = [
            ManagedProcess(
                f"{prefix}{n}",
                [
                    CELERY, "-A", "bms", "worker", "--pool=prefork",
                    "--concurrency", str(concurrency), "--loglevel", stack.worker_loglevel,
                    "-n", f"{prefix}{n}@%h", "--without-mingle", "--without-gossip",
                ],
                env=stack.env,
                log_dir=stack.log_dir,
            )
            for n in range(count)
        ]  # fmt: skip
        self.monitor = MemoryMonitor(self.pids)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.alive() and p.pid]

    def start(self, *, ready_timeout: float = 60.0) -> Workers:
        for process in self.processes:
            process.start()
        self.monitor.start()
        for process in self.processes:
            # Ready once its pool processes exist (the log says "ready." only at INFO).
            def ready(p: Any = process) -> bool:
                return not p.alive() or len(process_tree(p.pid or 0)) > self.concurrency

            _wait_until(ready, timeout=ready_timeout, what=f"worker {process.name}")
            if not process.alive():
                raise RuntimeError(f"worker {process.name} died:\n{process.tail()}")
        return self

    def kill(self, index: int | None = None) -> int:
        """SIGKILL one worker (random when index is None) with its pool; returns its index."""
        index = random.randrange(len(self.processes)) if index is None else index
        self.monitor.sample()
        self.processes[index].kill()
        return index

    def restart(self, index: int) -> None:
        process = self.processes[index]
        process.stop()
        process.start()

    def stop(self) -> list[int | None]:
        self.monitor.sample()
        codes = [p.stop(timeout=30) for p in self.processes]
        self.monitor.stop()
        return codes

    def peak_rss_mb(self) -> float:
        """Largest VmHWM seen among the workers' processes (main and pool), in MiB."""
        return self.monitor.peak_mb()


# --- Redis --------------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server (no persistence) a fault test may stop and restart."""

    def __init__(self, *, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process = ManagedProcess(
            f"redis-{self.port}",
            [
                shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            ],
            env=dict(os.environ),
            log_dir=log_dir,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process.start()
        _wait_until(lambda: redis.Redis.from_url(self.url).ping(), timeout=10, what="redis-server")
        return self

    def stop(self) -> None:
        self.process.stop(timeout=5)

    def restart(self, *, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


# --- The sandbox --------------------------------------------------------------------------------


class Sandbox:
    """The Xero sandbox as a subprocess, and its control API."""

    def __init__(
        self,
        *,
        log_dir: Path,
        time_scale: float = 1.0,
        port: int | None = None,
        seed: str = "demo",
        auto_approve: bool = True,
        redirect_uris: list[str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.time_scale = time_scale
        argv = [
            PYTHON, "-m", "xero_sandbox", "--port", str(self.port), "--seed", seed,
            "--time-scale", str(time_scale), "--webhook-url", NO_WEBHOOK,
        ]  # fmt: skip
        if auto_approve:
            argv.append("--auto-approve")
        for uri in redirect_uris or [REDIRECT_URI]:
            argv += ["--redirect-uri", uri]
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = ManagedProcess(
            f"sandbox-{self.port}", argv + (extra_args or []), env=env, log_dir=log_dir
        )
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Sandbox:
        self.process.start()
        _wait_until(
            lambda: self.http.get(self.url + "/__sandbox__/", timeout=2).ok,
            timeout=30,
            what="the sandbox",
        )
        return self

    def stop(self) -> None:
        self.process.stop(timeout=10)

    def memory_mb(self) -> float:
        return _kb(_proc_status(self.process.pid or 0).get("VmHWM")) / 1024

    # Control API -----------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        reply = self.http.get(f"{self.url}/__sandbox__/{path}", params=params, timeout=60)
        reply.raise_for_status()
        return reply.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = self.http.post(f"{self.url}/__sandbox__/{path}", json=body or {}, timeout=60)
        if not reply.ok:
            raise RuntimeError(f"sandbox {path}: {reply.status_code} {reply.text[:300]}")
        return reply.json()

    def add_org(self, name: str, **fields: Any) -> str:
        """Seed an organisation the demo user (every user) can access; returns its tenant id."""
        return str(self.post("orgs", {"name": name, **fields})["tenant_id"])

    def orgs(self) -> list[dict[str, Any]]:
        return list(self.get("orgs"))

    def configure_app(self, **fields: Any) -> Any:
        return self.post("apps", {"client_id": DEMO_CLIENT_ID, **fields})

    def set_limits(self, **limits: Any) -> Any:
        return self.post("limits", limits)

    def limits(self) -> Any:
        return self.get("limits")

    def faults_add(self, **fault: Any) -> Any:
        return self.post("faults", fault)

    def faults_clear(self) -> None:
        reply = self.http.delete(f"{self.url}/__sandbox__/faults", timeout=10)
        reply.raise_for_status()

    def clock(self) -> dict[str, Any]:
        return dict(self.get("clock"))

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock()["now"])

    # Request log -----------------------------------------------------------------------------

    def requests_log(self, since: int = 0) -> list[dict[str, Any]]:
        """Every logged API request after `since` (the sandbox keeps the last 20,000)."""
        return list(self.get("requests", since=since, limit=1_000_000))

    def last_seq(self) -> int:
        entries = self.get("requests", limit=1)
        return int(entries[-1]["seq"]) if entries else 0

    def rate_limited(self, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.get("rate-limited") if e["seq"] > since]

    def calls(self, since: int = 0, *, tenant_id: str | None = None) -> Counter[str]:
        """API calls after `since` by "METHOD /path" (tenant-less calls included when no
        tenant_id is given), plus "total" and "429"."""
        counts: Counter[str] = Counter()
        for entry in self.requests_log(since):
            if tenant_id is not None and entry.get("tenant_id") != tenant_id:
                continue
            path = entry["path"].removeprefix("/api.xro/2.0")
            counts[f"{entry['method']} {path}"] += 1
            counts["total"] += 1
            if entry.get("rate_limited"):
                counts["429"] += 1
        return counts


def sandbox_seconds(entry: dict[str, Any]) -> float:
    """A request-log entry's time on the sandbox clock, as epoch seconds."""
    return datetime.fromisoformat(entry["time"]).timestamp()


def format_calls(counts: Counter[str]) -> str:
    parts = [f"{k}: {v}" for k, v in sorted(counts.items()) if k not in ("total", "429")]
    return f"{counts['total']} calls ({', '.join(parts) or 'none'}), {counts['429']} × 429"


# --- The stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    """Scratch DB + Redis DB + sandbox + BMS processes, with BMS's environment."""

    name: str
    time_scale: float = 1.0
    pg_url: str = DEFAULT_PG
    redis_url: str = DEFAULT_REDIS
    keep_db: bool = False
    worker_loglevel: str = "WARNING"
    env_overrides: dict[str, str] = field(default_factory=dict)
    sandbox_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = ScratchDatabase(f"bms_bench_{self.name}", self.pg_url)
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"bms-bench-{self.name}-"))
        self.sandbox = Sandbox(
            log_dir=self.log_dir, time_scale=self.time_scale, extra_args=self.sandbox_args
        )
        self.env: dict[str, str] = {}
        self.workers: Workers | None = None
        self.extra: list[ManagedProcess] = []
        self._threads: list[_Loop] = []
        self._django_ready = False

    @property
    def window_seconds(self) -> float:
        return 60.0 / self.time_scale

    def build_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("XERO_", "CELERY_", "DATABASE_", "BMS_", "DJANGO_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="bms.settings.local",
            DJANGO_DEBUG="false",  # as in production: DEBUG keeps every SQL query in memory
            DATABASE_URL=self.db.url,
            CELERY_BROKER_URL=self.redis_url,
            XERO_API_BASE=self.sandbox.url,
            XERO_IDENTITY_BASE=self.sandbox.url,
            XERO_LOGIN_BASE=self.sandbox.url,
            XERO_CLIENT_ID=DEMO_CLIENT_ID,
            XERO_CLIENT_SECRET=DEMO_CLIENT_SECRET,
            XERO_REDIRECT_URI=REDIRECT_URI,
            XERO_RATE_LIMIT_REDIS_URL=self.redis_url,
            XERO_RATE_LIMIT_WINDOW_SECONDS=repr(self.window_seconds),
            BMS_LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
        )
        env.update(self.env_overrides)
        return env

    # Lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Stack:
        log(f"logs in {self.log_dir}")
        redis.Redis.from_url(self.redis_url).flushdb()
        self.db.create()
        self.sandbox.start()
        self.env = self.build_env()
        log(
            f"sandbox {self.sandbox.url} (time scale {self.time_scale:g}: a Xero minute is "
            f"{self.window_seconds:g} s), scratch DB {self.db.name}, Redis {self.redis_url}"
        )
        return self

    def setup_django(self) -> None:
        """Configure this process as a BMS process on the stack and migrate the scratch DB."""
        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        import django  # noqa: PLC0415 - after the environment is set

        django.setup()
        from django.core.management import call_command  # noqa: PLC0415

        call_command("migrate", verbosity=0)
        self._django_ready = True

    def close(self) -> None:
        for loop in self._threads:
            loop.stop()
        if self.workers is not None:
            self.workers.stop()
        for process in self.extra:
            process.stop(timeout=10)
        self.sandbox.stop()
        if self._django_ready:
            from django.db import connections  # noqa: PLC0415

            connections.close_all()
        if not self.keep_db:
            with contextlib.suppress(Exception):
                self.db.drop()
        with contextlib.suppress(Exception):
            redis.Redis.from_url(self.redis_url).flushdb()

    # BMS processes -------------------------------------------------------------------------

    def start_workers(self, *, count: int = 1, concurrency: int = 1, prefix: str = "w") -> Workers:
        self.workers = Workers(self, count=count, concurrency=concurrency, prefix=prefix)
        self.workers.start()
        log(f"{count} worker(s) × {concurrency} pool process(es) ready")
        return self.workers

    def start_beat(self) -> ManagedProcess:
        """Real celery beat (the sweeper every 30 real seconds, as in production)."""
        schedule = self.log_dir / "celerybeat-schedule"
        process = ManagedProcess(
            "beat",
            [CELERY, "-A", "bms", "beat", "--loglevel", "WARNING", "-s", str(schedule)],
            env=self.env,
            log_dir=self.log_dir,
        ).start()
        self.extra.append(process)
        return process

    def start_web(self, *, port: int | None = None, workers: int = 2) -> ManagedProcess:
        port = port or free_port()
        process = ManagedProcess(
            f"web-{port}",
            [
                str(ROOT / ".venv/bin/gunicorn"), "bms.wsgi:application", "--bind",
                f"127.0.0.1:{port}", "--workers", str(workers),
            ],
            env=self.env,
            log_dir=self.log_dir,
        ).start()  # fmt: skip
        _wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500,
            timeout=30,
            what="gunicorn",
        )
        self.extra.append(process)
        return process

    def start_sweeper(self, interval: float | None = None) -> None:
        """Run job_sweep() in this process every `interval` s (default: beat's 30 s, scaled)."""
        from admin_jobs.services import job_sweep  # noqa: PLC0415

        interval = interval or 30.0 / self.time_scale
        self._threads.append(_Loop("sweeper", interval, job_sweep).start())
        self.start_token_keeper()

    def start_token_keeper(self) -> None:
        """Scaled time only: the sandbox's access tokens live 30 sandbox minutes, BMS counts 30
        real minutes. Mark BMS's tokens due for refresh every 10 sandbox minutes so BMS's own
        refresh path runs before the sandbox expires them."""
        if self.time_scale <= 1 or any(t.name == "token-keeper" for t in self._threads):
            return
        from bms import clock  # noqa: PLC0415
        from xero_integration.models import XeroAuthorisation  # noqa: PLC0415

        def mark_due() -> None:
            XeroAuthorisation.objects.update(access_token_expires_at=clock.now())

        self._threads.append(_Loop("token-keeper", 600.0 / self.time_scale, mark_due).start())

    # Xero connection -----------------------------------------------------------------------

    def connect_entities(self, pairs: list[tuple[Any, str]]) -> list[Any]:
        """Connect each (entity, tenant_id) through BMS's real OAuth flow (auto-approve), link
        it and pull the organisation's accounts. Returns the XeroConnection per pair."""
        from django.contrib.sessions.backends.db import SessionStore  # noqa: PLC0415

        from xero_integration.models import XeroConnection  # noqa: PLC0415
        from xero_integration.services import (  # noqa: PLC0415
            entity_link_connection,
            xero_accounts_pull,
            xero_oauth_complete,
            xero_oauth_start,
        )

        tenant_ids = sorted({tenant for _, tenant in pairs})
        self.sandbox.configure_app(
            redirect_uris=[REDIRECT_URI], auto_approve=True, auto_approve_tenants=tenant_ids
        )
        session = SessionStore()
        url = xero_oauth_start(session=session, entity=pairs[0][0])
        reply = requests.get(url, allow_redirects=False, timeout=30)
        if reply.status_code != 302:
            raise RuntimeError(f"authorize: {reply.status_code} {reply.text[:300]}")
        params = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["Location"]).query).items()}
        result = xero_oauth_complete(session=session, params=params, user=None)
        by_tenant = {c.tenant_id: c for c in result.connections}
        missing = set(tenant_ids) - set(by_tenant)
        if missing:
            raise RuntimeError(f"not authorised: {sorted(missing)}")
        connections = []
        for entity, tenant_id in pairs:
            connection = XeroConnection.objects.get(pk=by_tenant[tenant_id].pk)
            entity_link_connection(entity=entity, connection=connection, user=None)
            connections.append(connection)
        for connection in {c.pk: c for c in connections}.values():
            xero_accounts_pull(connection=connection)
        return connections

    # Jobs ------------------------------------------------------------------------------------

    @staticmethod
    def unfinished_jobs() -> Counter[str]:
        from django.db.models import Count  # noqa: PLC0415

        from admin_jobs.models import UNFINISHED_STATES, BackgroundJob  # noqa: PLC0415

        rows = (
            BackgroundJob.objects.filter(state__in=UNFINISHED_STATES)
            .values("kind", "state")
            .annotate(n=Count("id"))
        )
        return Counter({f"{r['kind']}/{r['state']}": r["n"] for r in rows})

    @staticmethod
    def job_states() -> Counter[str]:
        from django.db.models import Count  # noqa: PLC0415

        from admin_jobs.models import BackgroundJob  # noqa: PLC0415

        rows = BackgroundJob.objects.values("kind", "state").annotate(n=Count("id"))
        return Counter({f"{r['kind']}/{r['state']}": r["n"] for r in rows})

    def wait_for_jobs(
        self,
        *,
        timeout: float,
        poll: float = 1.0,
        progress_every: float = 15.0,
        check_workers: bool = True,
    ) -> bool:
        """Wait until no job is unfinished; True when that happened within `timeout`."""
        deadline = time.monotonic() + timeout
        next_progress = time.monotonic() + progress_every
        while time.monotonic() < deadline:
            left = self.unfinished_jobs()
            if not left:
                return True
            if check_workers and self.workers is not None:
                dead = [p.name for p in self.workers.processes if not p.alive()]
                if dead:
                    tail = self.workers.processes[0].tail(8)
                    raise WorkerDied(f"worker(s) died: {dead}\n{tail}")
            if time.monotonic() >= next_progress:
                log(f"  unfinished: {dict(left)}")
                next_progress = time.monotonic() + progress_every
            time.sleep(poll)
        log(f"  still unfinished after {timeout:.0f} s: {dict(self.unfinished_jobs())}")
        return False

    @staticmethod
    def failed_jobs(limit: int = 5) -> list[tuple[int, str, str]]:
        from admin_jobs.models import BackgroundJob, JobState  # noqa: PLC0415

        rows = BackgroundJob.objects.filter(state=JobState.FAILED).order_by("id")
        return [(j.pk, j.kind, j.error_message[:200]) for j in rows[:limit]]


class WorkerDied(RuntimeError):
    """A worker process exited while a bench was waiting (on this shared machine, something
    outside the bench may stop Celery processes); the bench exits with EXIT_WORKER_DIED."""


EXIT_WORKER_DIED = 3


def run_part(script: str, argv: list[str], part: str, *, attempts: int = 2) -> bool:
    """Run one part of a bench as `script ... --part part` in its own process; a run whose
    worker was stopped from outside is run again (up to `attempts` times)."""
    for attempt in range(1, attempts + 1):
        command = [sys.executable, script, *argv, "--part", part]
        code = subprocess.run(command, check=False).returncode  # noqa: S603 - our own script
        if code != EXIT_WORKER_DIED:
            return code == 0
        log(f"part {part}: a worker was stopped from outside (attempt {attempt}); running again")
    return False


def main_guard(run: Callable[[], bool]) -> int:
    """Exit status of a bench part: 0 target met, 1 missed, EXIT_WORKER_DIED disturbed."""
    try:
        return 0 if run() else 1
    except WorkerDied as exc:
        log(f"disturbed: {exc}")
        return EXIT_WORKER_DIED


class _Loop:
    """Call `func` every `interval` seconds on a daemon thread (own DB connection)."""

    def __init__(self, name: str, interval: float, func: Callable[[], Any]) -> None:
        self.name = name
        self.interval = interval
        self.func = func
        self.runs = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> _Loop:
        self._thread.start()
        return self

    def _run(self) -> None:
        from django.db import connection  # noqa: PLC0415

        while not self._stop.wait(self.interval):
            try:
                self.func()
                self.runs += 1
            except Exception as exc:  # noqa: BLE001 - keep looping; report at the end
                self.errors += 1
                log(f"{self.name}: {exc!r}")
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --- Small helpers for the benches --------------------------------------------------------------


def children_peak_rss_mb() -> float:
    """ru_maxrss of this process's waited-for descendants (the largest one), in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"{label}: {time.perf_counter() - started:.1f} s")


def print_figure(label: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("  [target met]" if ok else "  [TARGET MISSED]")
    suffix = f"  (target {target})" if target else ""
    print(f"FIGURE {label}: {value}{suffix}{verdict}", flush=True)


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


# --- Bench data (after setup_django) ------------------------------------------------------------


def make_entity(code: str, *, currency: str = "NZD", timezone: str = "Pacific/Auckland") -> Any:
    """An entity with a 200 Sales account and a 15 % tax rate mapped to OUTPUT2 (the sandbox's
    NZ-style chart: every seeded organisation has 200 REVENUE and OUTPUT2)."""
    from decimal import Decimal  # noqa: PLC0415

    from billing.models import Account, AccountType, Entity, TaxRate  # noqa: PLC0415

    entity = Entity.objects.create(
        name=f"Bench {code}",
        code=code,
        base_currency=currency,
        timezone=timezone,
        invoice_prefix=f"{code}-INV-",
        credit_note_prefix=f"{code}-CN-",
    )
    Account.objects.create(entity=entity, code="200", name="Sales", type=AccountType.REVENUE)
    TaxRate.objects.create(
        entity=entity, name="GST on Income", rate=Decimal("15"), xero_tax_type="OUTPUT2"
    )
    return entity


def make_customers(entity: Any, count: int, *, batch: int = 5000) -> list[int]:
    """`count` never-synced customers (bulk_create); returns their ids in order."""
    from billing.models import Customer  # noqa: PLC0415
    from bms import clock  # noqa: PLC0415

    now = clock.now()
    ids: list[int] = []
    for start in range(0, count, batch):
        rows = [
            Customer(
                entity=entity,
                name=f"{entity.code} Customer {n:06d}",
                currency=entity.base_currency,
                created_at=now,
                updated_at=now,
            )
            for n in range(start, min(count, start + batch))
        ]
        ids += [c.pk for c in Customer.objects.bulk_create(rows)]
    return ids


def make_invoices(entity: Any, customer_ids: list[int], *, batch: int = 2000) -> list[int]:
    """One released invoice per customer id (one line: 1 × 100.00 + 15 % = 115.00), written
    with bulk_create with consistent totals; returns the invoice ids."""
    from decimal import Decimal  # noqa: PLC0415

    from billing.models import (  # noqa: PLC0415
        Account,
        DocumentStatus,
        Invoice,
        InvoiceLine,
        LineAmountType,
        TaxRate,
    )
    from bms import clock  # noqa: PLC0415

    now = clock.now()
    today = clock.today_in(entity.timezone)
    account = Account.objects.get(entity=entity, code="200")
    tax = TaxRate.objects.get(entity=entity, name="GST on Income")
    start_number = entity.next_invoice_number
    ids: list[int] = []
    for offset in range(0, len(customer_ids), batch):
        chunk = customer_ids[offset : offset + batch]
        invoices = Invoice.objects.bulk_create(
            Invoice(
                entity=entity,
                customer_id=customer_id,
                number=f"{entity.invoice_prefix}{start_number + offset + i:07d}",
                status=DocumentStatus.RELEASED,
                issue_date=today,
                due_date=today,
                currency=entity.base_currency,
                line_amount_type=LineAmountType.EXCLUSIVE,
                subtotal=Decimal("100.00"),
                total_tax=Decimal("15.00"),
                total=Decimal("115.00"),
                amount_due=Decimal("115.00"),
                released_at=now,
                version=2,
                created_at=now,
                updated_at=now,
            )
            for i, customer_id in enumerate(chunk)
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                position=1,
                description="Bench coffee beans",
                quantity=Decimal("1"),
                unit_price=Decimal("100.00"),
                account=account,
                tax_rate=tax,
                line_amount=Decimal("100.00"),
                tax_amount=Decimal("15.00"),
            )
            for invoice in invoices
        )
        ids += [invoice.pk for invoice in invoices]
    type(entity).objects.filter(pk=entity.pk).update(
        next_invoice_number=start_number + len(customer_ids)
    )
    return ids


def rss_mb(pid: int | None = None) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process (this one by default), in MiB."""
    status = _proc_status(pid or os.getpid())
    return _kb(status.get("VmRSS")) / 1024, _kb(status.get("VmHWM")) / 1024
