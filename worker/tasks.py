"""The jobs the worker runs. Each is a Django task, so it can also be enqueued on demand."""

from django.tasks import task

from metering.usage.rollups.refresh import rollups_refresh


@task
def refresh_rollups() -> dict[str, int | list[str]]:
    """Bring the daily usage rollups up to date (PostgreSQL; a no-op on SQLite). Safe to run again after a crash:
    it recomputes only days that are not rolled up or changed since."""
    report = rollups_refresh()
    # Meters the refresh had to skip are named in the result, which stays in the queue table (and admin) to read.
    return {"definitions": report.definitions, "days": report.days, "rows": report.rows, "skipped": report.skipped}
