"""The job queue lives in the default database only (other aliases, like the benchmarks' databases, skip it)."""

from worker.routers import QueueOnDefaultDatabase


def test_the_queue_and_worker_tables_migrate_on_the_default_database_only():
    router = QueueOnDefaultDatabase()
    assert router.allow_migrate("default", "django_tasks_database") is True
    assert router.allow_migrate("default", "worker") is True
    assert router.allow_migrate("usage_bench", "django_tasks_database") is False
    assert router.allow_migrate("usage_bench", "worker") is False
    assert router.allow_migrate("usage_bench", "metering") is None
