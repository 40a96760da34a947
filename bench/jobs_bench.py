"""Throughput of the job engine with real Celery workers on PostgreSQL and Redis.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \
        .venv/bin/python bench/jobs_bench.py [--jobs 10000] [--workers 4]

DATABASE_URL names the server (any database on it): the bench creates its own scratch database
(bms_bench_jobs), migrates it, starts --workers Celery worker processes (prefork, one process
each), enqueues --jobs `noop` jobs through job_enqueue() in transactions of 500 (each commit
publishes its wake-ups to Redis), waits until every job has finished and prints jobs/second.

"Run twice" is counted from a per-run record, not from the job rows: the noop handler appends a
"done <job id> <lease token> <pid>" line to a file for every run, and the bench counts job ids that
appear more than once (and ids that never appear). Both must be 0. The bench empties only its own
Celery queue on the broker, then drops the scratch database (--keep leaves it). While waiting it
sweeps every 30 s, as beat would, and reports how many jobs the sweeper had to re-publish.
DJANGO_SETTINGS_MODULE defaults to bms.settings.local (set it to try other settings).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
SCRATCH_DB = "bms_bench_jobs"
ENQUEUE_BATCH = 500


def _server_urls() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "")
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit("Set DATABASE_URL=postgres://user@host:port/anydb: the bench needs PostgreSQL.")
    maintenance = urlunparse(parsed._replace(scheme="postgresql", path="/postgres"))
    scratch = urlunparse(parsed._replace(path=f"/{SCRATCH_DB}"))
    return maintenance, scratch


def _broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        sys.exit("Set CELERY_BROKER_URL=redis://host:port/db: the bench needs Redis.")
    return url


def _drop(maintenance: str) -> None:
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_DB}" WITH (FORCE)')


def _create(maintenance: str) -> None:
    _drop(maintenance)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{SCRATCH_DB}"')


def _start_workers(count: int, *, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for n in range(count):
        log = (log_dir / f"worker{n}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/celery"),
                    "-A",
                    "bms",
                    "worker",
                    "--pool=prefork",
                    "-c",
                    "1",
                    "-n",
                    f"bench{n}@%h",
                    "--without-mingle",
                    "--without-gossip",
                    f"--loglevel={os.environ.get('BENCH_WORKER_LOGLEVEL', 'WARNING')}",
                ],
                cwd=ROOT,
                env={**os.environ, "BMS_LOG_LEVEL": "WARNING"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _wait_ready(workers: list[subprocess.Popen[bytes]], *, timeout: float) -> None:
    from bms.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(worker.poll() is not None for worker in workers):
            sys.exit("A worker exited during start-up; see its log.")
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= len(workers):
            return
    sys.exit(f"Workers not ready after {timeout} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", action="store_true", help="leave the scratch database")
    args = parser.parse_args()

    maintenance, scratch = _server_urls()
    broker = _broker_url()
    _create(maintenance)
    os.environ.update({"DATABASE_URL": scratch, "CELERY_BROKER_URL": broker})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bms.settings.local")
    os.environ.setdefault("BMS_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from admin_jobs.models import FINISHED_STATES, BackgroundJob, JobState
    from admin_jobs.services import job_enqueue, job_sweep
    from bms.celery import app

    call_command("migrate", verbosity=0)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")  # type: ignore[attr-defined] # bench queue only

    work_dir = Path(tempfile.mkdtemp(prefix="bms-jobs-bench-"))
    record_file = work_dir / "runs.txt"
    workers = _start_workers(args.workers, log_dir=work_dir)
    swept = 0
    try:
        _wait_ready(workers, timeout=60)
        print(f"{args.workers} workers ready; enqueueing {args.jobs} noop jobs …")

        started = time.monotonic()
        for first in range(0, args.jobs, ENQUEUE_BATCH):
            with transaction.atomic():
                for n in range(first, min(first + ENQUEUE_BATCH, args.jobs)):
                    job_enqueue(
                        kind="noop",
                        entity=None,
                        description=f"Bench job {n}",
                        direction="export",
                        triggered_by="system",
                        payload={"record_file": str(record_file)},
                        dedupe_key=f"bench:{n}",
                    )
        enqueued = time.monotonic()

        # Stand in for beat: sweep every 30 s, as production does. In a healthy run it finds
        # nothing (every message arrives within REPUBLISH_AFTER); after a lost message it rescues.
        deadline = started + args.timeout
        next_sweep = time.monotonic() + 30
        while time.monotonic() < deadline:
            unfinished = BackgroundJob.objects.exclude(state__in=FINISHED_STATES).count()
            if unfinished == 0:
                break
            if time.monotonic() >= next_sweep:
                swept += job_sweep()
                next_sweep += 30
            time.sleep(0.2)
        finished = time.monotonic()
    finally:
        _stop_workers(workers)

    succeeded = BackgroundJob.objects.filter(state=JobState.SUCCEEDED).count()
    job_ids = set(BackgroundJob.objects.values_list("id", flat=True))
    runs: Counter[int] = Counter()
    starts = 0
    if record_file.exists():
        for line in record_file.read_text().splitlines():
            event, job_id, _token, _pid = line.split()
            if event == "done":
                runs[int(job_id)] += 1
            else:
                starts += 1
    twice = sum(1 for count in runs.values() if count > 1)
    never = len(job_ids - set(runs))
    retried_rows = BackgroundJob.objects.filter(attempts__gt=1).count()
    elapsed = finished - started

    print(f"jobs:                    {args.jobs}")
    print(f"workers:                 {args.workers} (prefork, 1 process each)")
    print(f"enqueue (500 per commit): {enqueued - started:.2f} s")
    print(f"enqueue → all finished:  {elapsed:.2f} s")
    print(f"throughput:              {args.jobs / elapsed:.0f} jobs/s")
    print(f"succeeded:               {succeeded}")
    print(f"handler runs recorded:   {sum(runs.values())} (starts {starts})")
    print(f"jobs run twice:          {twice}")
    print(f"jobs never run:          {never}")
    print(f"rows with attempts > 1:  {retried_rows}")
    print(f"re-published by sweeper: {swept}")
    print(f"worker logs:             {work_dir}")

    from django.db import connections

    connections.close_all()
    if not args.keep:
        _drop(maintenance)
    if twice or never or succeeded != args.jobs:
        sys.exit(1)


if __name__ == "__main__":
    main()
