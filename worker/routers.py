"""The job queue (django-tasks-db) and the worker's own rows live in the default database only.

Other aliases (the benchmarks' throw-away databases) are migrated with the same apps, and django-tasks-db's data
migration reads through the default connection whatever alias is migrated: without this router, migrating another
alias fails whenever the default database does not exist, and would touch the wrong one when it does.
"""

from django.db import DEFAULT_DB_ALIAS

QUEUE_APPS = frozenset({"django_tasks_database", "worker"})  # app labels


class QueueOnDefaultDatabase:
    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool | None:
        if app_label in QUEUE_APPS:
            return db == DEFAULT_DB_ALIAS
        return None
