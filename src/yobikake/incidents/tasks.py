"""The background side of the security officer's upload: scope the sealed leaked file,
report progress."""

from django.tasks import task

from yobikake.incidents.models import Incident
from yobikake.incidents.services import run_scoping
from yobikake.intake.uploads import RowProgress, opened_upload


def progress(job_id: int) -> RowProgress:
    return RowProgress("incidents:incident", job_id)


def rows_done(job_id: int) -> int:
    return progress(job_id).rows


@task()
def scope_uploaded_file(incident_id: int, upload_id: str) -> str:
    incident = Incident.objects.select_related("created_by").get(pk=incident_id)
    try:
        with opened_upload(upload_id) as path:
            incident = run_scoping(
                incident,
                path,
                progress=progress(incident_id),
            )
    except Exception:
        # The upload could not be opened (run_scoping marks its own failures): say so.
        Incident.objects.filter(pk=incident_id, state=Incident.State.QUEUED).update(
            state=Incident.State.FAILED, error_code="upload_unreadable"
        )
        raise
    progress(incident_id)(incident.rows)
    return str(incident.state)
