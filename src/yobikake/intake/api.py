from django.conf import settings
from django.http import HttpRequest
from ninja import File, Form, Router, Schema, Status, UploadedFile
from ninja.errors import HttpError

from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.intake import selectors, services
from yobikake.intake.models import ListImport, TargetList
from yobikake.intake.tasks import import_uploaded_list
from yobikake.intake.uploads import discard_upload

router = Router(tags=["lists"])


class ListOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    state: str
    rows: int
    aggregates: dict[str, dict[str, int]]


@router.get("/lists/{list_id}", response=ListOut, summary="One target list's figures")
def get_list(request: HttpRequest, list_id: int) -> ListOut:
    """Counts only: no personal data leaves through the API except by export."""
    try:
        target_list = selectors.access_target_list(request.auth, list_id)
    except TargetList.DoesNotExist:
        raise HttpError(404, "Not found") from None
    return ListOut(
        id=target_list.pk,
        insurer_number=target_list.insurer.number,
        fiscal_year=target_list.fiscal_year,
        state=target_list.state,
        rows=target_list.row_count,
        aggregates=target_list.aggregates,
    )


class ImportOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    state: str
    policy: str
    existing: str
    rows_submitted: int
    rows_accepted: int
    findings: int
    error: str
    list_id: int | None


def _import_out(list_import: ListImport) -> ImportOut:
    return ImportOut(
        id=list_import.pk,
        insurer_number=list_import.insurer.number,
        fiscal_year=list_import.fiscal_year,
        state=list_import.state,
        policy=list_import.policy,
        existing=list_import.existing,
        rows_submitted=list_import.rows_submitted,
        rows_accepted=list_import.rows_accepted,
        findings=list_import.findings_count,
        error=list_import.error_code,
        list_id=list_import.target_list_id,
    )


@router.post(
    "/lists",
    response={202: ImportOut},
    summary="Send a target list (insurer staff; imported in the background)",
)
def create_list(
    request: HttpRequest,
    fiscal_year: Form[int],
    file: UploadedFile = File(None),  # noqa: B008 - ninja declares parameters so
    policy: Form[str] = "reject",
    existing: Form[str] = "",
) -> Status:
    """A second list for the same fiscal year needs `existing`: `add` (a supplementary
    list) or `replace` (the earlier list is withdrawn and its early deletion requested);
    without it the answer is 409."""
    actor = request.auth
    if getattr(request, "upload_too_large", False):  # cut off while it arrived
        raise HttpError(413, f"larger than {settings.YOBIKAKE_UPLOAD_MAX_MB} MB")
    if file is None:
        raise HttpError(422, "file missing")
    if not has_permission(actor, Permission.LIST_OWN_IMPORT) or not actor.organization.insurer:
        raise HttpError(403, "Not permitted")
    if policy not in ListImport.Policy.values:
        raise HttpError(422, "policy must be reject or exclude")
    if existing and existing not in ListImport.Existing.values:
        raise HttpError(422, "existing must be add or replace")
    upload_id, sha256 = file.upload_id, file.sha256  # sealed as it arrived (uploads.py)
    try:
        list_import = services.start_import(
            actor=actor,
            insurer=actor.organization.insurer,
            fiscal_year=fiscal_year,
            file_name=file.name or "",
            file_sha256=sha256,
            policy=policy,
            existing=existing,
        )
    except AccountError as exc:
        discard_upload(upload_id)
        status = 409 if exc.code in services.EARLIER_LIST_REFUSALS else 422
        raise HttpError(status, str(exc)) from None
    import_uploaded_list.enqueue(list_import.pk, upload_id)
    list_import.refresh_from_db()
    return Status(202, _import_out(list_import))


@router.get("/imports/{import_id}", response=ImportOut, summary="What became of a list sent")
def get_import(request: HttpRequest, import_id: int) -> ImportOut:
    try:
        return _import_out(selectors.access_import(request.auth, import_id))
    except ListImport.DoesNotExist:
        raise HttpError(404, "Not found") from None
