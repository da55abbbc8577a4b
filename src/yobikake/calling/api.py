from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError

from yobikake.calling import selectors
from yobikake.calling.models import Campaign

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
