import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from admin_jobs import handlers, services
from admin_jobs.handlers import JobHandler


class Published:
    """Every wake-up the engine sent: (job id, countdown). Thread-safe."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()

    def __call__(self, job_ids: list[int], countdown: float | None) -> None:
        with self._lock:
            self.calls.extend((job_id, countdown) for job_id in job_ids)

    @property
    def ids(self) -> list[int]:
        return [job_id for job_id, _ in self.calls]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Published:
    recorder = Published()
    monkeypatch.setattr(services, "_publish", recorder)
    return recorder


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Register a handler for a kind for the duration of one test."""

    def _register(kind: str, func: Any, *, batch_size: int = 1) -> None:
        monkeypatch.setitem(
            handlers._registry, kind, JobHandler(kind=kind, func=func, batch_size=batch_size)
        )

    yield _register


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "_jitter_fraction", lambda: 0.0)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop real time inside bms.clock; clock.advance() still moves it."""
    from types import SimpleNamespace

    from django.utils import timezone

    from bms import clock

    frozen = timezone.now()
    monkeypatch.setattr(clock, "timezone", SimpleNamespace(now=lambda: frozen))
