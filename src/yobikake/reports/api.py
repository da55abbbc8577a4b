from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError

from yobikake.calling.models import Campaign
from yobikake.calling.selectors import access_campaign
from yobikake.reports.effect import effect_dict
from yobikake.reports.selectors import campaign_effect, has_results, synthetic_results

router = Router(tags=["campaigns"])


class EffectOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    method: str
    overall: dict[str, Any]
    by_sex: list[dict[str, Any]]
    by_age: list[dict[str, Any]]
    reached_split: dict[str, Any]
    state: str
    has_results: bool
    synthetic_results: bool


@router.get("/campaigns/{campaign_id}/effect", response=EffectOut, summary="A campaign's effect")
def campaign_effect_api(request: HttpRequest, campaign_id: int) -> EffectOut:
    """Checkup uptake in the called arm (intention to treat) against the holdout, with
    the difference, its 95% interval and p-value; by sex and age band (cells under 10
    people per arm suppressed); the reached split, which is biased (not randomised).
    `state` says whether calling is still running (an interim figure);
    `has_results` whether any checkup result has come (before, uptake reads 0 in both
    arms and measures nothing); `synthetic_results` whether the checkup results were
    planted by `synth` (demo)."""
    try:
        campaign = access_campaign(request.auth, campaign_id)
    except Campaign.DoesNotExist:
        raise HttpError(404, "Not found") from None
    return EffectOut(
        id=campaign.pk,
        insurer_number=campaign.insurer.number,
        fiscal_year=campaign.fiscal_year,
        state=campaign.state,
        has_results=has_results(campaign),
        synthetic_results=synthetic_results(campaign),
        **effect_dict(campaign_effect(campaign)),
    )
