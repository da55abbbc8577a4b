"""The background side of a web upload: import the sealed file, report progress."""

from django.tasks import task

from yobikake.intake.models import ListImport
from yobikake.intake.services import importing, run_import
from yobikake.intake.uploads import RowProgress, opened_upload


def progress(job_id: int) -> RowProgress:
    return RowProgress("intake:import", job_id)


def rows_done(job_id: int) -> int:
    return progress(job_id).rows


@task()
def import_uploaded_list(import_id: int, upload_id: str) -> str:
    list_import = ListImport.objects.select_related("insurer", "created_by").get(pk=import_id)
    # Running (and leased) before the upload is opened: a worker killed from here on
    # leaves an import that the next worker finds and marks failed.
    with importing(list_import):
        try:
            with opened_upload(upload_id) as path:
                result = run_import(
                    list_import,
                    path,
                    progress=progress(import_id),
                )
        except Exception:
            # The upload could not be opened (run_import marks its own failures): say so.
            ListImport.objects.filter(pk=import_id, state=ListImport.State.RUNNING).update(
                state=ListImport.State.FAILED, error_code="upload_unreadable"
            )
            raise
    progress(import_id)(result.rows_submitted)
    return str(result.state)
