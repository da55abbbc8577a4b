"""The background side of the security officer's upload: scope the sealed leaked file,
report progress."""

from django.tasks import task
from django.utils.translation import gettext as _

from yobikake.incidents.models import Incident
from yobikake.incidents.services import record_failure, run_scoping, running
from yobikake.intake.uploads import RowProgress, opened_upload


def progress(job_id: int) -> RowProgress:
    return RowProgress("incidents:incident", job_id)


def rows_done(job_id: int) -> int:
    return progress(job_id).rows


@task()
def scope_uploaded_file(incident_id: int, upload_id: str) -> str:
    incident = Incident.objects.select_related("created_by").get(pk=incident_id)
    progress(incident_id)(0)  # a scoping again starts from the first row
    # Running (and leased) before the upload is opened: a worker killed from here on
    # leaves a scoping that the next worker finds and marks failed.
    with running(incident):
        try:
            with opened_upload(upload_id) as path:
                incident = run_scoping(incident, path, progress=progress(incident_id))
        except Exception:
            # The upload could not be opened (run_scoping records its own failures).
            if Incident.objects.filter(pk=incident_id, state=Incident.State.RUNNING).exists():
                record_failure(
                    incident, "upload_unreadable", _("The uploaded file could not be opened.")
                )
            raise
    progress(incident_id)(incident.rows)
    return str(incident.state)
