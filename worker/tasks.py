"""The jobs the worker runs. Each is a Django task, so it can also be enqueued on demand."""

import datetime as dt

from django.conf import settings
from django.tasks import task
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from alerts.services import alerts_evaluate
from metering.usage.rollups.refresh import rollups_refresh
from webhooks.delivery import deliveries_run
from webhooks.digest import unmatched_digests_publish


@task
def refresh_rollups() -> dict[str, int | list[str]]:
    """Bring the daily usage rollups and the per-day event counts up to date (PostgreSQL; a no-op on SQLite). Safe
    to run again after a crash: it recomputes only days that are not rolled up (or counted) or changed since."""
    report = rollups_refresh()
    # Meters the refresh had to skip are named in the result, which stays in the queue table (and admin) to read.
    return {"definitions": report.definitions, "days": report.days, "rows": report.rows,
            "counted_days": report.counted_days, "skipped": report.skipped}  # fmt: skip


@task
def deliver_webhooks() -> dict[str, int]:
    """Deliver the webhook messages that are due (at most ~30 s of work per run, so the other jobs keep their turn).
    Safe after a crash: a message whose delivery was cut off is due again when its claim's lease runs out."""
    return deliveries_run(budget_seconds=30).as_dict()


@task
def digest_unmatched_events() -> dict[str, int]:
    """Queue the events.unmatched digest of every environment that has subscribers and unreported unmatched events.
    Safe after a crash: the cursor of reported events moves in the transaction that queues the digest."""
    return {"digests": unmatched_digests_publish()}


@task
def evaluate_alerts() -> dict[str, int | bool]:
    """Evaluate the alert states and entitlement limits of the (feature, customer) pairs ingest marked (SPEC §11).
    Safe to run again after a crash: a pass that did not commit left its marks, and nothing fires twice."""
    return alerts_evaluate().as_dict()


@task
def prune_job_results() -> dict[str, int]:
    """Delete finished job rows older than `WORKER_KEEP_RESULTS`: without it the queue table grows by a row per run
    of every job (an alert pass every 30 s alone is 2,880 rows a day). Queued and running jobs stay, and schedules
    keep their own rows, so nothing depends on the rows that go. Safe to run again at any time."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.WORKER_KEEP_RESULTS)
    deleted, _ = DBTaskResult.objects.finished().filter(finished_at__lte=cutoff).delete()
    return {"deleted": deleted}
