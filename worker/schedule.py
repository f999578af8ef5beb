"""The periodic jobs: what runs and how often. A later job (alert evaluation every 60 s, webhook deliveries) is
one more entry here; the scheduler and the crash recovery need no change."""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.tasks import Task

from worker import tasks


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: Task
    every_seconds: Callable[[], float]


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("refresh_rollups", tasks.refresh_rollups, lambda: settings.WORKER_ROLLUPS_EVERY),
    PeriodicJob("deliver_webhooks", tasks.deliver_webhooks, lambda: settings.WEBHOOKS_DELIVER_EVERY),
    PeriodicJob(
        "digest_unmatched_events", tasks.digest_unmatched_events, lambda: settings.WEBHOOKS_UNMATCHED_DIGEST_EVERY
    ),
    PeriodicJob("evaluate_alerts", tasks.evaluate_alerts, lambda: settings.WORKER_ALERTS_EVERY),
    PeriodicJob("prune_job_results", tasks.prune_job_results, lambda: settings.WORKER_PRUNE_EVERY),
)
