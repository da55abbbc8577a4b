"""Exports: the insurer's page of exports for it (and its age key), and the approvers'
page of requests waiting for a second person."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.calling.models import Campaign
from yobikake.calling.selectors import access_campaign, visible_campaigns
from yobikake.exports import results, selectors, services
from yobikake.exports.forms import InsurerKeyForm
from yobikake.exports.models import Approval


def _described(approvals: list[Approval]) -> list[tuple[Approval, str]]:
    return [(a, services.producer(a.kind).describe(a)) for a in approvals]


@permission_required(Permission.EXPORT_OWN_DOWNLOAD)
def export_index(request: HttpRequest, form: InsurerKeyForm | None = None) -> HttpResponse:
    """The insurer's exports and the key they are encrypted to."""
    insurer_id = request.user.organization.insurer_id
    approvals = list(selectors.own_approvals(request.user)[:100])
    now = timezone.now()
    # A campaign whose results are asked for and not yet downloaded, refused or expired.
    open_requests = {
        a.subject.get("campaign_id")
        for a in approvals
        if a.kind == Approval.Kind.RESULTS
        and a.state in (Approval.State.REQUESTED, Approval.State.APPROVED)
        and a.expires_at > now
    }
    return render(
        request,
        "exports/export_index.html",
        {
            "approvals": _described(approvals),
            "open_requests": open_requests,
            "key": selectors.current_key(insurer_id) if insurer_id else None,
            "form": form or InsurerKeyForm(),
            "campaigns": (
                visible_campaigns(request.user).exclude(state=Campaign.State.DRAFT)
                if insurer_id and has_permission(request.user, Permission.EXPORT_OWN_REQUEST)
                else []
            ),
        },
    )


@permission_required(Permission.EXPORT_OWN_REQUEST)
@require_POST
def request_results(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Ask for a campaign's results file; a second person approves it."""
    try:
        campaign = access_campaign(request.user, campaign_id)
    except Campaign.DoesNotExist:
        raise Http404 from None
    try:
        results.request_results(actor=request.user, campaign=campaign)
    except AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Requested: a second person must approve it."))
    return redirect("exports:export_index")


@permission_required(Permission.EXPORT_OWN_DOWNLOAD)
@require_POST
def register_key(request: HttpRequest) -> HttpResponse:
    form = InsurerKeyForm(request.POST)
    if form.is_valid():
        try:
            services.register_insurer_key(
                actor=request.user, public_key=form.cleaned_data["public_key"]
            )
        except AccountError as exc:
            form.add_error("public_key", str(exc))
        else:
            messages.success(request, _("The key is registered."))
            return redirect("exports:export_index")
    return export_index(request, form=form)


@permission_required(Permission.EXPORT_OWN_DOWNLOAD)
@require_POST
def download(request: HttpRequest, approval_id: int) -> HttpResponse:
    """The approved file, produced now and encrypted to the insurer's key; once."""
    try:
        approval = selectors.access_own_approval(request.user, approval_id)
    except Approval.DoesNotExist:
        raise Http404 from None
    try:
        released = services.release_export(actor=request.user, approval=approval)
    except AccountError as exc:
        messages.error(request, str(exc))
        return redirect("exports:export_index")
    response = HttpResponse(released.data, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, released.name)
    response["Cache-Control"] = "no-store"
    return response


@permission_required(Permission.EXPORT_ANY_APPROVE)
def approval_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "exports/approval_list.html",
        {
            "waiting": _described(list(selectors.waiting_for_decision())),
            "decided": _described(selectors.decided_recently()),
        },
    )


@permission_required(Permission.EXPORT_ANY_APPROVE)
@require_POST
def decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    try:
        approval = selectors.access_pending_approval(request.user, approval_id)
    except Approval.DoesNotExist:
        raise Http404 from None
    decision = services.approve if request.POST.get("decision") == "approve" else services.refuse
    try:
        decided = decision(actor=request.user, approval=approval)
    except AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Approved.") if decision is services.approve else _("Refused."))
        if decided.custody_url:
            messages.info(
                request,
                _("Confirm it in custody with your passkey, or nothing is released: %(url)s")
                % {"url": decided.custody_url},
            )
    return redirect("exports:approval_list")
