import factory

from admin_jobs.models import BackgroundJob, JobDirection, JobKind, JobState, JobTrigger
from bms import clock
from tests.billing.factories import EntityFactory


class BackgroundJobFactory(factory.django.DjangoModelFactory):
    """A bare job row; tests of the engine create jobs through job_enqueue instead."""

    class Meta:
        model = BackgroundJob

    kind = JobKind.NOOP
    direction = JobDirection.EXPORT
    state = JobState.QUEUED
    entity = factory.SubFactory(EntityFactory)
    description = factory.Sequence(lambda n: f"Diagnostic job {n}")
    dedupe_key = factory.Sequence(lambda n: f"noop:test:{n}")
    triggered_by = JobTrigger.USER
    not_before = factory.LazyFunction(clock.now)
    created_at = factory.LazyFunction(clock.now)
    updated_at = factory.LazyFunction(clock.now)
