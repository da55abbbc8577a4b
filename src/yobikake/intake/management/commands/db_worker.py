"""`yobikake db_worker`: django-tasks-db's worker, which first checks its start (the
append-only guards, the settings and code it runs: audit/startup.py) and clears up after
a worker or command that was killed part-way (a `kill -9`, a crash, a power cut).

The checks are here, in the command, so that `django-admin db_worker` and `python -m
django db_worker` with Yobikake's settings are checked too."""

import logging
import os
from typing import Any

from django.core.management import CommandError
from django.tasks import TaskResultStatus
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from yobikake.audit.startup import StartRefused, check_at_start
from yobikake.custody.protocol import Heartbeat
from yobikake.incidents.services import fail_interrupted_scopings
from yobikake.intake import services, uploads
from yobikake.vault.heartbeat import beat_in_background

log = logging.getLogger("yobikake.worker")


class Command(db_worker.Command):
    help = (
        "Run background tasks (list imports, leak scoping). On starting, refuse without "
        "every append-only guard of the audit log (with a critical alert) and record the "
        "settings and code it runs; mark failed the imports and scopings whose process is "
        "gone, with an alert; clear the upload store of what no task will read; beat "
        "to the custodian every minute while it runs."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if _runs_the_tasks(options):
            try:
                check_at_start("worker")
            except StartRefused as refused:
                raise CommandError(f"refused to start: {refused}") from None
            _clear_up()
            beat_in_background(Heartbeat.APPLICATION)
        super().handle(*args, **options)


def _runs_the_tasks(options: dict[str, Any]) -> bool:
    """False in the process `--reload` leaves watching the code: the process it starts
    (again after each change) runs the tasks, and is the one checked, once a start."""
    reloading = options["reload"] and not options["batch"]
    return not reloading or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"


def _clear_up() -> None:
    for list_import in services.fail_interrupted_imports():
        log.warning("list import #%s was interrupted; marked failed", list_import.pk)
    for incident in fail_interrupted_scopings():
        log.warning("scoping of incident #%s was interrupted; marked failed", incident.pk)
    for name in uploads.remove_leftovers(_waiting_uploads()):
        log.warning("removed %s from the upload store: no task will read it", name)


def _waiting_uploads() -> set[str]:
    """The upload ids that queued or running tasks were given."""
    unfinished = DBTaskResult.objects.exclude(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED]
    )
    return {
        arg
        for call in unfinished.values_list("args_kwargs", flat=True)
        for arg in call.get("args", [])
        if isinstance(arg, str)
    }
