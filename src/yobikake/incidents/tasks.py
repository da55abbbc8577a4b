"""The background side of the security officer's upload: scope the sealed leaked file,
report progress."""

from django.core.cache import cache
from django.tasks import task

from yobikake.incidents.models import Incident
from yobikake.incidents.services import run_scoping
from yobikake.intake.uploads import opened_upload


def progress_key(incident_id: int) -> str:
    return f"incidents:incident:{incident_id}:rows"


def rows_done(incident_id: int) -> int:
    return int(cache.get(progress_key(incident_id)) or 0)


@task()
def scope_uploaded_file(incident_id: int, upload_id: str) -> str:
    incident = Incident.objects.select_related("created_by").get(pk=incident_id)
    try:
        with opened_upload(upload_id) as path:
            incident = run_scoping(
                incident,
                path,
                progress=lambda n: cache.set(progress_key(incident_id), n, timeout=3600),
            )
    except Exception:
        # The upload could not be opened (run_scoping marks its own failures): say so.
        Incident.objects.filter(pk=incident_id, state=Incident.State.QUEUED).update(
            state=Incident.State.FAILED, error_code="upload_unreadable"
        )
        raise
    cache.set(progress_key(incident_id), incident.rows, timeout=3600)
    return str(incident.state)
