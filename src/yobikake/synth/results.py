"""Synthetic checkup results with a known (planted) effect of calling: the holdout takes
the checkup with probability `p0`, the called arm with `p0 + effect`, each person drawn
on their own from a seed. The effect estimate is checked against what was planted."""

import random
from collections.abc import Sequence
from datetime import timedelta

from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Campaign
from yobikake.tenancy.fiscal import FiscalYear


def draw_attendance(holdout: Sequence[bool], *, p0: float, effect: float, seed: int) -> list[bool]:
    """Whether each person (in the called arm unless `holdout`) took the checkup."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    return [rng.random() < (p0 if held else p0 + effect) for held in holdout]


def plant_checkup_results(
    campaign: Campaign, *, p0: float = 0.30, effect: float = 0.05, seed: int = 1
) -> int:
    """Set `attended_on` on the campaign's call targets as drawn (a day in its fiscal
    year), clearing the others; how many took the checkup. Test and demo data only: a
    real insurer's results come through `record_checkup_results`. Written on the record
    (`checkup:results:synthetic`), so the campaign's effect is marked synthetic."""
    targets = list(CallTarget.objects.filter(campaign=campaign).order_by("pk"))
    attended = draw_attendance([t.holdout for t in targets], p0=p0, effect=effect, seed=seed)
    fiscal_year = FiscalYear(campaign.fiscal_year)
    days = (fiscal_year.ends - fiscal_year.starts).days
    rng = random.Random(seed + 1)  # noqa: S311 - synthetic data
    for target, took in zip(targets, attended, strict=True):
        target.attended_on = (
            fiscal_year.starts + timedelta(days=rng.randrange(days + 1)) if took else None
        )
    CallTarget.objects.bulk_update(targets, ["attended_on"], batch_size=2000)
    append_event(
        tag=AuditTag.CHECKUP_RESULTS_SYNTHETIC,
        actor=None,
        insurer_id=campaign.insurer_id,
        details={"campaign_id": campaign.pk, "attended": sum(attended), "seed": seed},
    )
    return sum(attended)
