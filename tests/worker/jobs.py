"""Tasks the worker tests enqueue; a worker subprocess imports them by path."""

import time

from django.tasks import TaskContext, task


@task(takes_context=True)
def slow_on_first_attempt(context: TaskContext, value: str) -> str:
    """Long enough on its first attempt for the test to kill the worker running it; quick when run again."""
    if context.attempt == 1:
        time.sleep(60)
    return value
