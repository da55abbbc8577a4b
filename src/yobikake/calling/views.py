"""The operator's screen (one call, nothing else), the supervisor's board and the
campaign pages."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.calling import dispositions, forms, selectors, services, terms
from yobikake.calling.models import Attempt, CallTarget, Campaign
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import RevealRefused, reveal


def _script(campaign: Campaign, shown: dict[str, str], operator: User) -> str:
    """The talk script with its placeholders filled: {氏名} {保険者} {担当者}."""
    return (
        campaign.script.replace("{氏名}", shown.get("name_kanji", ""))
        .replace("{保険者}", campaign.insurer.name)
        .replace("{担当者}", operator.username)
    )


def _call_page(request: HttpRequest, call_target: CallTarget | None) -> HttpResponse:
    context: dict[str, object] = {"dispositions": dispositions.current()}
    if call_target is not None:
        try:
            # Outside any transaction: the reveal commits its own audit event.
            shown = reveal(request.user, call_target.target, Purpose.CALL)
        except RevealRefused as exc:
            messages.error(request, str(exc))
            return render(request, "calling/operator.html", context, status=403)
        campaign = call_target.campaign
        context |= {
            "ct": call_target,
            "campaign": campaign,
            "shown": shown,
            "tel": "".join(c for c in shown.get("phone", "") if c.isdigit() or c == "+"),
            "script": _script(campaign, shown, request.user),
            # Only a person called before has a history (most checkouts are first calls).
            "history": Attempt.objects.filter(call_target=call_target)
            .select_related("disposition")
            .order_by("ended_at")
            if call_target.attempts
            else (),
        }
    return render(request, "calling/operator.html", context)


@permission_required(Permission.TARGET_REVEAL_CALL)
def operator_screen(request: HttpRequest) -> HttpResponse:
    """The call checked out to the operator, or the button for the next one."""
    return _call_page(request, services.current_checkout(request.user))


@permission_required(Permission.TARGET_REVEAL_CALL)
@require_POST
def next_call(request: HttpRequest) -> HttpResponse:
    """Check the next call out and show it (one request: checkout and reveal)."""
    try:
        checkout = services.next_call(operator=request.user)
    except services.NothingToCall as exc:
        reason = selectors.reason_label(exc.code)
        messages.info(request, _("Nothing to call now: %(reason)s") % {"reason": reason})
        return redirect("calling:operator")
    return _call_page(request, checkout.call_target)


@permission_required(Permission.TARGET_REVEAL_CALL)
@require_POST
def outcome(request: HttpRequest, call_target_id: int) -> HttpResponse:
    form = forms.OutcomeForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("calling:operator")
    # Entered as Tokyo time: the form makes it aware in the project's zone (Asia/Tokyo).
    callback_at: datetime | None = form.cleaned_data.get("callback_at")
    try:
        services.record_outcome(
            actor=request.user,
            call_target_id=call_target_id,
            code=form.cleaned_data["code"],
            note=form.cleaned_data["note"],
            callback_at=callback_at,
        )
    except AccountError as exc:
        messages.error(request, str(exc))
        return redirect("calling:operator")
    if request.POST.get("then") == "next":
        return next_call(request)
    return redirect("calling:operator")


# Who sees campaigns: the insurer (its own), the federation, the call centre's supervisors.
_SEES_CAMPAIGNS = (
    Permission.PROGRESS_OWN_VIEW,
    Permission.AGGREGATE_ANY_VIEW,
    Permission.PROGRESS_LIVE_VIEW,
)


@permission_required(*_SEES_CAMPAIGNS)
def campaign_index(request: HttpRequest) -> HttpResponse:
    campaigns = selectors.visible_campaigns(request.user)
    return render(
        request,
        "calling/campaign_index.html",
        {
            "campaigns": campaigns,
            "perms_board": has_permission(request.user, Permission.PROGRESS_LIVE_VIEW),
        },
    )


def _access(request: HttpRequest, campaign_id: int) -> Campaign:
    try:
        return selectors.access_campaign(request.user, campaign_id)
    except Campaign.DoesNotExist:
        raise Http404 from None


@permission_required(*_SEES_CAMPAIGNS)
def progress(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """A campaign's progress and outcome counts: for its insurer, the federation and
    the call centre's supervisors (who also assign its operators and start it here)."""
    campaign = _access(request, campaign_id)
    runs = has_permission(request.user, Permission.CAMPAIGN_ANY_RUN)
    return render(
        request,
        "calling/progress.html",
        {
            "campaign": campaign,
            "terms": _terms_context(request, campaign, runs),
            "funnel": selectors.funnel(campaign),
            "outcomes": selectors.outcome_counts(campaign),
            "simulated": selectors.simulated_calls(campaign),
            "operators_form": forms.OperatorsForm(
                initial={"operators": list(campaign.operators.all())}
            )
            if runs
            else None,
        },
    )


def _terms_context(request: HttpRequest, campaign: Campaign, runs: bool) -> dict[str, Any]:
    """A draft's terms beyond its contract, the insurer's approval of them, and what the
    viewer may do about it: a supervisor asks, the insurer's staff decide."""
    if campaign.state != Campaign.State.DRAFT:
        return {}
    contract, beyond = terms.needs(campaign)
    if contract is None or not beyond:
        return {}
    latest = terms.latest(campaign)
    state = latest.current_state if latest is not None else ""
    return {
        "described": terms.describe(beyond, campaign, contract),
        "approval": latest,
        "state": state,
        "may_request": runs and state not in ("requested", "approved"),
        "may_decide": state == "requested"
        and has_permission(request.user, Permission.CAMPAIGN_OWN_APPROVE),
    }


@permission_required(Permission.CAMPAIGN_ANY_RUN)
@require_http_methods(["GET", "POST"])
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = forms.CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        target_list = data.pop("target_list")
        settings = {k: v for k, v in data.items() if v not in (None, "")}
        try:
            campaign = services.create_campaign(
                actor=request.user,
                insurer=target_list.insurer,
                fiscal_year=target_list.fiscal_year,
                lists=[target_list],
                **settings,
            )
        except AccountError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("calling:progress", campaign_id=campaign.pk)
    return render(request, "calling/campaign_new.html", {"form": form})


@permission_required(Permission.OPERATOR_ANY_ASSIGN)
@require_POST
def campaign_operators(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _access(request, campaign_id)
    form = forms.OperatorsForm(request.POST)
    if form.is_valid():
        try:
            services.assign_operators(
                actor=request.user,
                campaign=campaign,
                operators=list(form.cleaned_data["operators"]),
            )
            messages.success(request, _("Operators saved."))
        except AccountError as exc:
            messages.error(request, str(exc))
    return redirect("calling:progress", campaign_id=campaign.pk)


def _act(
    request: HttpRequest, campaign_id: int, service: Callable[..., Any], done: str
) -> HttpResponse:
    """Run a supervisor's action on the campaign; say what came of it on its page."""
    campaign = _access(request, campaign_id)
    try:
        service(actor=request.user, campaign=campaign)
        messages.success(request, done)
    except AccountError as exc:
        messages.error(request, str(exc))
    return redirect("calling:progress", campaign_id=campaign.pk)


@permission_required(Permission.CAMPAIGN_ANY_RUN)
@require_POST
def campaign_start(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Start: the queue is built and the control group drawn (its seed recorded)."""
    done = _("The campaign has started; its control group is fixed.")
    return _act(request, campaign_id, services.start_campaign, done)


@permission_required(Permission.CAMPAIGN_ANY_RUN)
@require_POST
def campaign_terms_request(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Ask the insurer to approve the draft's terms beyond the contract."""
    done = _("The insurer has been asked to approve this campaign's terms.")
    return _act(request, campaign_id, services.request_campaign_approval, done)


@permission_required(Permission.CAMPAIGN_OWN_APPROVE)
@require_POST
def campaign_terms_approve(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The insurer's staff approve the terms as requested."""
    done = _("You have approved this campaign's terms; the call centre can start it.")
    return _act(request, campaign_id, services.approve_campaign_terms, done)


@permission_required(Permission.CAMPAIGN_OWN_APPROVE)
@require_POST
def campaign_terms_refuse(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The insurer's staff refuse them; the campaign stays a draft."""
    done = _("You have refused this campaign's terms; it cannot start with them.")
    return _act(request, campaign_id, services.refuse_campaign_terms, done)


@permission_required(Permission.CAMPAIGN_ANY_RUN)
@require_POST
def campaign_close(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Close: calling ends; the queue as it stands is the campaign's result."""
    done = _("The campaign is closed; nobody in it will be called again.")
    return _act(request, campaign_id, services.close_campaign, done)


def _board_context() -> dict[str, object]:
    now = timezone.now()
    campaigns = list(
        Campaign.objects.filter(state=Campaign.State.RUNNING).select_related("insurer")
    )
    return {
        "now": now,
        "campaigns": [
            {
                "campaign": c,
                "funnel": selectors.funnel(c),
                "simulated": selectors.simulated_calls(c),
                "reasons": [
                    (code, selectors.reason_label(code), n)
                    for code, n in selectors.reason_counts(c, now)
                ],
            }
            for c in campaigns
        ],
        "operators": selectors.operator_states(campaigns, now),
    }


@permission_required(Permission.PROGRESS_LIVE_VIEW)
def board(request: HttpRequest) -> HttpResponse:
    return render(request, "calling/board.html", _board_context())


@permission_required(Permission.PROGRESS_LIVE_VIEW)
def board_live(request: HttpRequest) -> HttpResponse:
    """The board's figures alone, for htmx to refresh."""
    return render(request, "calling/_board_live.html", _board_context())
