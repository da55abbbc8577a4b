from datetime import date, time
from decimal import Decimal

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.errors import HttpError

from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.calling import selectors, services, terms
from yobikake.calling.models import Campaign
from yobikake.intake.models import TargetList

router = Router(tags=["campaigns"])


class ProgressOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    state: str
    funnel: dict[str, int]
    holdout: int
    outcomes: dict[str, int]


@router.get(
    "/campaigns/{campaign_id}/progress", response=ProgressOut, summary="A campaign's progress"
)
def campaign_progress(request: HttpRequest, campaign_id: int) -> ProgressOut:
    """Counts only: targets → number known → attempted → reached → intends to attend,
    the held-out control group, and calls per outcome."""
    try:
        campaign = selectors.access_campaign(request.auth, campaign_id)
    except Campaign.DoesNotExist:
        raise HttpError(404, "Not found") from None
    funnel = selectors.funnel(campaign)
    return ProgressOut(
        id=campaign.pk,
        insurer_number=campaign.insurer.number,
        fiscal_year=campaign.fiscal_year,
        state=campaign.state,
        funnel=dict(funnel.steps()),
        holdout=funnel.holdout,
        outcomes={d.code: n for d, n in selectors.outcome_counts(campaign)},
    )


class CampaignIn(Schema):
    list_id: int
    name: str = ""
    starts: date | None = None
    ends: date | None = None
    window_start: time | None = None
    window_end: time | None = None
    saturdays: bool = False
    max_attempts: int | None = None
    holdout_share: Decimal | None = None
    script: str = ""


class CampaignOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    state: str
    starts: date
    ends: date
    window_start: time
    window_end: time
    holdout_share: Decimal
    needs_approval: list[str]  # terms beyond the contract the insurer has to approve
    approval: str  # the insurer's decision on them: "", requested, approved, refused …


def _campaign_out(campaign: Campaign) -> CampaignOut:
    _contract, beyond = terms.needs(campaign)
    latest = terms.latest(campaign) if beyond else None
    return CampaignOut(
        id=campaign.pk,
        insurer_number=campaign.insurer.number,
        fiscal_year=campaign.fiscal_year,
        state=campaign.state,
        starts=campaign.starts,
        ends=campaign.ends,
        window_start=campaign.window_start,
        window_end=campaign.window_end,
        holdout_share=campaign.holdout_share,
        needs_approval=[str(b) for b in beyond],
        approval=latest.current_state if latest is not None else "",
    )


def _run(request: HttpRequest) -> None:
    if not has_permission(request.auth, Permission.CAMPAIGN_ANY_RUN):
        raise HttpError(403, "Not permitted")


@router.post(
    "/campaigns", response={201: CampaignOut}, summary="Create a campaign over a list (draft)"
)
def create_campaign(request: HttpRequest, payload: CampaignIn) -> Status:
    """Supervisors. Refused (422, the reason in `detail`) when its calling days fall
    outside the contract's calling period or past the list's retention deadline. Terms
    beyond the contract (calling hours, a control group below the minimum) are listed in
    `needs_approval`; the insurer's approval of them is asked for at once."""
    _run(request)
    target_list = TargetList.objects.select_related("insurer").filter(pk=payload.list_id).first()
    if target_list is None:
        raise HttpError(404, "Not found")
    settings = {
        key: value
        for key, value in payload.model_dump(exclude={"list_id", "name"}).items()
        if value not in (None, "")
    }
    try:
        campaign = services.create_campaign(
            actor=request.auth,
            insurer=target_list.insurer,
            fiscal_year=target_list.fiscal_year,
            lists=[target_list],
            name=payload.name,
            **settings,
        )
    except AccountError as exc:
        raise HttpError(422, str(exc)) from None
    return Status(201, _campaign_out(campaign))


@router.post("/campaigns/{campaign_id}/start", response=CampaignOut, summary="Start a campaign")
def start_campaign(request: HttpRequest, campaign_id: int) -> CampaignOut:
    """Supervisors. Builds the queue and draws the control group. Refused (422) outside
    the contract, and for terms beyond it that the insurer has not approved (which
    raises an alert)."""
    _run(request)
    try:
        campaign = selectors.access_campaign(request.auth, campaign_id)
    except Campaign.DoesNotExist:
        raise HttpError(404, "Not found") from None
    try:
        campaign = services.start_campaign(actor=request.auth, campaign=campaign)
    except AccountError as exc:
        raise HttpError(422, str(exc)) from None
    return _campaign_out(campaign)
