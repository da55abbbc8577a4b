"""`yobikake db_worker`: django-tasks-db's worker, which first clears up after a worker
or command that was killed part-way (a `kill -9`, a crash, a power cut)."""

import logging
from typing import Any

from django.tasks import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from yobikake.incidents.services import fail_interrupted_scopings
from yobikake.intake import services, uploads

log = logging.getLogger("yobikake.worker")


class Command(db_worker.Command):
    help = (
        "Run background tasks (list imports, leak scoping); on starting, mark failed "
        "the imports and scopings whose process is gone, with an alert, and clear the "
        "upload store of what no task will read."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for list_import in services.fail_interrupted_imports():
            log.warning("list import #%s was interrupted; marked failed", list_import.pk)
        for incident in fail_interrupted_scopings():
            log.warning("scoping of incident #%s was interrupted; marked failed", incident.pk)
        for name in uploads.remove_leftovers(_waiting_uploads()):
            log.warning("removed %s from the upload store: no task will read it", name)
        super().handle(*args, **options)


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
