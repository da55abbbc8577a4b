from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.intake import selectors, services
from yobikake.intake.forms import UploadForm
from yobikake.intake.models import ListImport
from yobikake.intake.reports import findings_csv
from yobikake.intake.tasks import import_uploaded_list, rows_done
from yobikake.intake.uploads import discard_upload

FINDINGS_SHOWN = 200


def _access(request: HttpRequest, import_id: int) -> ListImport:
    try:
        return selectors.access_import(request.user, import_id)
    except ListImport.DoesNotExist:
        raise Http404 from None


@permission_required(Permission.LIST_OWN_IMPORT)
def list_index(request: HttpRequest) -> HttpResponse:
    imports = selectors.visible_imports(request.user)[:100]
    return render(request, "intake/list_index.html", {"imports": imports})


@permission_required(Permission.LIST_OWN_IMPORT)
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    insurer = request.user.organization.insurer
    years = list(insurer.contracts.values_list("fiscal_year", flat=True))
    form = UploadForm(request.POST or None, request.FILES or None, fiscal_years=years)
    if getattr(request, "upload_too_large", False):  # cut off while it arrived
        form.fields["file"].required = False
        form.add_error("file", form.too_large())
    uploaded = request.FILES.get("file")
    if request.method == "POST" and form.is_valid():
        upload_id, sha256 = uploaded.upload_id, uploaded.sha256
        try:
            list_import = services.start_import(
                actor=request.user,
                insurer=insurer,
                fiscal_year=form.cleaned_data["fiscal_year"],
                file_name=uploaded.name,
                file_sha256=sha256,
                policy=form.cleaned_data["policy"],
                existing=form.cleaned_data["existing"],
            )
        except AccountError as exc:
            discard_upload(upload_id)
            if exc.code not in services.EARLIER_LIST_REFUSALS:
                messages.error(request, str(exc))
                return redirect("intake:upload")
            form.add_error("existing", str(exc))
        else:
            import_uploaded_list.enqueue(list_import.pk, upload_id)
            return redirect("intake:import_detail", import_id=list_import.pk)
    elif uploaded is not None:  # the form was refused: the sealed copy goes
        discard_upload(uploaded.upload_id)
    return render(request, "intake/upload.html", {"form": form, "insurer": insurer})


def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    list_import = _access(request, import_id)
    return render(request, "intake/import_detail.html", _detail_context(list_import))


def import_progress(request: HttpRequest, import_id: int) -> HttpResponse:
    """The status block alone, for htmx to refresh while the import runs."""
    list_import = _access(request, import_id)
    return render(request, "intake/_import_status.html", _detail_context(list_import))


def _detail_context(list_import: ListImport) -> dict[str, object]:
    running = list_import.state in (ListImport.State.QUEUED, ListImport.State.RUNNING)
    replaced = list_import.target_list.supersedes.all() if list_import.target_list else []
    return {
        "imp": list_import,
        "replaced": replaced,
        "running": running,
        "rows_done": rows_done(list_import.pk) if running else list_import.rows_submitted,
        "findings": list_import.findings.all()[:FINDINGS_SHOWN],
        "more_findings": max(0, list_import.findings_count - FINDINGS_SHOWN),
    }


def import_report(request: HttpRequest, import_id: int) -> HttpResponse:
    list_import = _access(request, import_id)
    response = HttpResponse(findings_csv(list_import), content_type="text/csv; charset=utf-8")
    name = _("import-%(id)s-findings.csv") % {"id": list_import.pk}
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
