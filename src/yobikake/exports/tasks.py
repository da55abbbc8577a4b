"""The retention schedule, as a task for the worker (run it daily)."""

import json

from django.tasks import task

from yobikake.exports import retention


@task()
def enforce_retention_task() -> str:
    """`yobikake retention enforce`, for a schedule; returns the same JSON."""
    return json.dumps(retention.enforce_retention().as_record())
