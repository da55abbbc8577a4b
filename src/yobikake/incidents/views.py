"""The security officer's incident screens: the list, a leaked file's upload (scoped in
the background, its progress shown live, and again when the scoping failed), what the
scoping found, the regulator report draft, and the request for each insurer's
notification list."""

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.incidents import notification, reporting, selectors, services
from yobikake.incidents.forms import IncidentForm, ReportForm, ScopeAgainForm
from yobikake.incidents.models import Incident, Match
from yobikake.incidents.tasks import rows_done, scope_uploaded_file
from yobikake.intake.forms import too_large
from yobikake.intake.uploads import discard_upload
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer

# The scoping's own words for a file it could not read, by code (stored in English).
ERRORS = {
    "no_person_columns": gettext_lazy(
        "No column holds names, kana, phone numbers or insured numbers."
    ),
    "upload_unreadable": gettext_lazy("The uploaded file could not be opened."),
    "interrupted": gettext_lazy(
        "The scoping was interrupted: the process running it ended (a restart or a kill) "
        "before it finished. Nothing was recorded; scope the file again."
    ),
}


def _access(request: HttpRequest, incident_id: int) -> Incident:
    try:
        return selectors.access_incident(request.user, incident_id)
    except Incident.DoesNotExist:
        raise Http404 from None


@permission_required(Permission.INCIDENT_ANY_MANAGE)
def incident_list(request: HttpRequest) -> HttpResponse:
    incidents = selectors.visible_incidents(request.user)[:200]
    return render(request, "incidents/incident_list.html", {"incidents": incidents})


@permission_required(Permission.INCIDENT_ANY_MANAGE)
@require_http_methods(["GET", "POST"])
def incident_new(request: HttpRequest) -> HttpResponse:
    """The leaked file is sealed as it arrives (intake/uploads.py) and scoped by a task."""
    form = IncidentForm(request.POST or None, request.FILES or None)
    if getattr(request, "upload_too_large", False):  # cut off while it arrived
        form.fields["file"].required = False
        form.add_error("file", too_large())
    uploaded = request.FILES.get("file")
    if request.method == "POST" and form.is_valid():
        try:
            incident = services.open_incident(
                actor=request.user,
                title=form.cleaned_data["title"],
                aware_on=form.cleaned_data["aware_on"],
                malicious=form.cleaned_data["malicious"],
                file_name=uploaded.name,
                file_sha256=uploaded.sha256,
            )
        except AccountError as exc:
            discard_upload(uploaded.upload_id)
            messages.error(request, str(exc))
            return redirect("incidents:incident_new")
        scope_uploaded_file.enqueue(incident.pk, uploaded.upload_id)
        return redirect("incidents:incident_detail", incident_id=incident.pk)
    if uploaded is not None:  # the form was refused: the sealed copy goes
        discard_upload(uploaded.upload_id)
    return render(request, "incidents/incident_new.html", {"form": form})


def _detail_context(
    incident: Incident, scope_again_form: ScopeAgainForm | None = None
) -> dict[str, Any]:
    running = incident.state in (Incident.State.QUEUED, Incident.State.RUNNING)
    failed = incident.state == Incident.State.FAILED
    context: dict[str, Any] = {
        "incident": incident,
        "running": running,
        "rows_done": rows_done(incident.pk) if running else incident.rows,
        "deadlines": _deadlines(incident),
        "error": ERRORS.get(incident.error_code, incident.error_message),
        "scope_again": (scope_again_form or ScopeAgainForm()) if failed else None,
    }
    if incident.state != Incident.State.SCOPED:
        return context
    table = selectors.table(incident)
    requests = notification.requests_of(incident)
    by_tier = selectors.persons_by_tier(incident)
    return context | {
        "items": reporting.item_labels(incident.items),
        "tiers": [(t.label, by_tier.get(t.value, 0), t.value) for t in Match.Tier],
        "years": [FiscalYear(y) for y in table.years],
        "table": table,
        "rows": [
            (ins, counts, entries, people, requests.get(ins.pk))
            for ins, counts, entries, people in table.rows
        ],
        "canaries": selectors.canaries_named(incident),
        "exports_found": selectors.exports_found(incident),
    }


def _deadlines(incident: Incident) -> dict[str, Any]:
    """The 速報 window and the 確報 date, with the days left to each (from today, Tokyo)."""
    d = selectors.deadlines(incident)
    today = timezone.localdate()
    preliminary = selectors.days_left(d.preliminary_by, today)
    final = selectors.days_left(d.final_by, today)
    return {
        "dates": d,
        "preliminary": {"left": max(preliminary, 0), "overdue": max(-preliminary, 0)},
        "final": {"left": max(final, 0), "overdue": max(-final, 0)},
    }


@permission_required(Permission.INCIDENT_ANY_MANAGE)
def incident_detail(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = _access(request, incident_id)
    return render(request, "incidents/incident_detail.html", _detail_context(incident))


@permission_required(Permission.INCIDENT_ANY_MANAGE)
def incident_status(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The status and results alone, for htmx to refresh while the scoping runs."""
    incident = _access(request, incident_id)
    return render(request, "incidents/_incident_status.html", _detail_context(incident))


@permission_required(Permission.INCIDENT_ANY_MANAGE)
@require_POST
def scope_again(request: HttpRequest, incident_id: int) -> HttpResponse:
    """A failed (or interrupted) scoping's file, uploaded again, sealed and scoped by a
    task as at the start."""
    incident = _access(request, incident_id)
    form = ScopeAgainForm(request.POST, request.FILES)
    if getattr(request, "upload_too_large", False):  # cut off while it arrived
        form.fields["file"].required = False
        form.add_error("file", too_large())
    uploaded = request.FILES.get("file")
    if not form.is_valid():
        if uploaded is not None:
            discard_upload(uploaded.upload_id)
        context = _detail_context(incident, form)
        return render(request, "incidents/incident_detail.html", context)
    try:
        services.scope_again(actor=request.user, incident=incident, file_sha256=uploaded.sha256)
    except AccountError as exc:
        discard_upload(uploaded.upload_id)
        messages.error(request, str(exc))
    else:
        scope_uploaded_file.enqueue(incident.pk, uploaded.upload_id)
    return redirect("incidents:incident_detail", incident_id=incident.pk)


@permission_required(Permission.INCIDENT_ANY_MANAGE)
@require_POST
def request_notification(request: HttpRequest, incident_id: int, insurer_id: int) -> HttpResponse:
    """Ask for an insurer's notification list; a second person approves it."""
    incident = _access(request, incident_id)
    insurer = Insurer.objects.filter(pk=insurer_id).first()
    if insurer is None:
        raise Http404
    try:
        notification.request_notification_list(
            actor=request.user, incident=incident, insurer=insurer
        )
    except AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("The list for %(insurer)s waits for a second person's approval.")
            % {"insurer": insurer.name},
        )
    return redirect("incidents:incident_detail", incident_id=incident.pk)


@permission_required(Permission.INCIDENT_ANY_MANAGE)
def report(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The report to the Personal Information Protection Commission, as a printable draft."""
    incident = _access(request, incident_id)
    context = _detail_context(incident)
    texts = incident.report
    context |= {
        "report_items": [
            (number, key, label, texts.get(key, "") if key else "")
            for number, (key, label) in enumerate(reporting.REPORT_ITEMS, start=1)
        ],
        "insurers_affected": len(context.get("rows", [])),
        "prepared_on": timezone.localdate(),
        "organization": request.user.organization,
    }
    return render(request, "incidents/report.html", context)


@permission_required(Permission.INCIDENT_ANY_MANAGE)
@require_http_methods(["GET", "POST"])
def report_edit(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = _access(request, incident_id)
    form = ReportForm(request.POST or None, initial=incident.report)
    if request.method == "POST" and form.is_valid():
        try:
            reporting.update_report(actor=request.user, incident=incident, texts=form.cleaned_data)
        except AccountError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("The report draft is saved."))
            return redirect("incidents:report", incident_id=incident.pk)
    return render(request, "incidents/report_edit.html", {"incident": incident, "form": form})
