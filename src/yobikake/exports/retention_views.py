"""Retention pages: the lists and their deadlines (with the overdue ones flagged and the
early deletions waiting for the security officer), and the deletion certificates."""

from pathlib import Path

from django.contrib import messages
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.keys import audit_keys
from yobikake.exports import certificates, retention
from yobikake.exports.models import Approval, DeletionCertificate
from yobikake.intake.models import TargetList


@permission_required(Permission.RETENTION_ANY_MANAGE, Permission.EXPORT_OWN_REQUEST)
def retention_index(request: HttpRequest) -> HttpResponse:
    lists = list(retention.visible_lists(request.user).order_by("retention_until", "pk")[:500])
    certificates = {c.list_id: c for c in retention.visible_certificates(request.user)}
    requests = retention.deletion_requests()
    if not has_permission(request.user, Permission.RETENTION_ANY_MANAGE):
        requests = requests.filter(insurer_id=request.user.organization.insurer_id)
    today = retention.today()
    waiting = {
        a.subject.get("list_id") for a in requests if a.current_state == Approval.State.REQUESTED
    }
    return render(
        request,
        "retention/index.html",
        {
            "rows": [(t, certificates.get(t.pk), t.pk in waiting) for t in lists],
            "overdue": [
                t
                for t in lists
                if t.state == TargetList.State.ACTIVE
                and t.retention_until is not None
                and t.retention_until < today
            ],
            "requests": list(requests[:100]),
            "manages": has_permission(request.user, Permission.RETENTION_ANY_MANAGE),
            "today": today,
        },
    )


@permission_required(Permission.EXPORT_OWN_REQUEST)
@require_POST
def request_deletion(request: HttpRequest, list_id: int) -> HttpResponse:
    try:
        target_list = retention.access_own_list(request.user, list_id)
    except TargetList.DoesNotExist:
        raise Http404 from None
    try:
        retention.request_list_deletion(actor=request.user, target_list=target_list)
    except AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Deletion requested: the security officer decides."))
    return redirect("exports:retention_index")


@permission_required(Permission.RETENTION_ANY_MANAGE)
@require_POST
def decide_deletion(request: HttpRequest, approval_id: int) -> HttpResponse:
    try:
        approval = retention.access_deletion_request(request.user, approval_id)
    except Approval.DoesNotExist:
        raise Http404 from None
    try:
        if request.POST.get("decision") == "approve":
            certificate = retention.approve_list_deletion(actor=request.user, approval=approval)
            messages.success(request, _("The list is shredded."))
            return redirect("exports:certificate", certificate.pk)
        retention.refuse_list_deletion(actor=request.user, approval=approval)
        messages.success(request, _("Refused."))
    except AccountError as exc:
        messages.error(request, str(exc))
    return redirect("exports:retention_index")


def _certificate(request: HttpRequest, certificate_id: int) -> DeletionCertificate:
    try:
        return retention.access_certificate(request.user, certificate_id)
    except DeletionCertificate.DoesNotExist:
        raise Http404 from None


@permission_required(Permission.RETENTION_ANY_MANAGE, Permission.INSURER_OWN_VIEW)
def certificate(request: HttpRequest, certificate_id: int) -> HttpResponse:
    """The printable certificate, with what it takes to check it by hand."""
    return render(
        request,
        "retention/certificate.html",
        {"c": _certificate(request, certificate_id), "public_key": audit_keys().public_key_pem()},
    )


@permission_required(Permission.RETENTION_ANY_MANAGE, Permission.INSURER_OWN_VIEW)
def certificate_bundle(request: HttpRequest, certificate_id: int) -> HttpResponse:
    """The certificate's verification bundle: everything the insurer's own checker needs."""
    found = _certificate(request, certificate_id)
    response = JsonResponse(
        certificates.verification_bundle(found), json_dumps_params={"indent": 1}
    )
    response["Content-Disposition"] = f'attachment; filename="deletion-certificate-{found.pk}.json"'
    return response


@permission_required(Permission.RETENTION_ANY_MANAGE, Permission.INSURER_OWN_VIEW)
def certificate_pdf(request: HttpRequest, certificate_id: int) -> HttpResponse:
    """The certificate printed to PDF by headless Chromium from a self-contained page."""
    found = _certificate(request, certificate_id)
    css = Path(finders.find("yobikake/report.css")).read_text(encoding="utf-8")
    html = render_to_string(
        "retention/certificate_pdf.html",
        {"c": found, "public_key": audit_keys().public_key_pem(), "css": css},
        request=request,
    )
    try:
        pdf = certificates.render_pdf(html)
    except certificates.PdfUnavailable:
        return HttpResponse(
            _(
                "The PDF cannot be made on this server (no browser to print with). "
                "Open the certificate and print it from your browser instead."
            ),
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="deletion-certificate-{found.pk}.pdf"'
    return response
