"""The background side of a web upload: import the sealed file, report progress."""

from django.core.cache import cache
from django.tasks import task

from yobikake.intake.models import ListImport
from yobikake.intake.services import run_import
from yobikake.intake.uploads import opened_upload


def progress_key(import_id: int) -> str:
    return f"intake:import:{import_id}:rows"


def rows_done(import_id: int) -> int:
    return int(cache.get(progress_key(import_id)) or 0)


@task()
def import_uploaded_list(import_id: int, upload_id: str) -> str:
    list_import = ListImport.objects.select_related("insurer", "created_by").get(pk=import_id)
    try:
        with opened_upload(upload_id) as path:
            result = run_import(
                list_import,
                path,
                progress=lambda n: cache.set(progress_key(import_id), n, timeout=3600),
            )
    except Exception:
        # The upload could not be opened (run_import marks its own failures): say so.
        ListImport.objects.filter(pk=import_id, state=ListImport.State.QUEUED).update(
            state=ListImport.State.FAILED, error_code="upload_unreadable"
        )
        raise
    cache.set(progress_key(import_id), result.rows_submitted, timeout=3600)
    return str(result.state)
