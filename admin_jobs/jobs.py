"""Diagnostic `noop` jobs, used by the benchmark, the worker tests and operators checking a worker.

payload (all optional):
    "sleep": seconds to sleep, standing in for a slow Xero call;
    "sleep_until_attempt": sleep only on attempts up to this number (a test kills the first run and
        lets the second finish quickly);
    "raise": "transient" or "permanent", to exercise the retry policy;
    "raise_until_attempt": raise only on attempts up to this number;
    "record_file": a path; one line "<event> <job id> <lease token> <pid>" is appended when a run
        starts and when it finishes. A small O_APPEND write is atomic on Linux, so many worker
        processes can share one file; the benchmark counts runs from it.
"""

import os
import time

from admin_jobs.errors import PermanentJobError, TransientJobError
from admin_jobs.handlers import JobSuccess, job_handler
from admin_jobs.models import BackgroundJob, JobKind


def _record(path: str, event: str, job: BackgroundJob) -> None:
    line = f"{event} {job.pk} {job.lease_token} {os.getpid()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _on_this_attempt(job: BackgroundJob, limit_key: str) -> bool:
    return job.attempts <= int(job.payload.get(limit_key, job.attempts))


@job_handler(JobKind.NOOP)
def noop(job: BackgroundJob) -> JobSuccess:
    record_file = job.payload.get("record_file")
    if record_file:
        _record(record_file, "start", job)
    seconds = float(job.payload.get("sleep", 0))
    if seconds > 0 and _on_this_attempt(job, "sleep_until_attempt"):
        time.sleep(min(seconds, 60))
    failure = job.payload.get("raise")
    if failure and _on_this_attempt(job, "raise_until_attempt"):
        if record_file:
            _record(record_file, f"raise-{failure}", job)
        if failure == "transient":
            raise TransientJobError("Diagnostic transient failure; it will be retried.")
        raise PermanentJobError("Diagnostic permanent failure.", detail={"attempt": job.attempts})
    if record_file:
        _record(record_file, "done", job)
    return JobSuccess(result={"pid": os.getpid()})
