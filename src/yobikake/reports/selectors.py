"""Figures across insurers: the participation matrix with the rows each list held, and
the measured effect of calling."""

import json
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum

from yobikake.accounts.models import User
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Campaign
from yobikake.intake.models import TargetList
from yobikake.reports.effect import Comparison, Effect, Group, Pooled, estimate, pool
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer
from yobikake.tenancy.selectors import participation_matrix, participation_matrix_of


@dataclass(frozen=True)
class Cell:
    took_part: bool
    submitted: int  # data rows in the files sent (what the seed's table counts)
    accepted: int  # rows stored (counts survive shredding)


@dataclass(frozen=True)
class MatrixRow:
    insurer: Insurer
    cells: tuple[Cell, ...]

    @property
    def years(self) -> int:
        return sum(c.took_part for c in self.cells)

    @property
    def submitted(self) -> int:
        return sum(c.submitted for c in self.cells)

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.cells)


@dataclass(frozen=True)
class ListMatrix:
    fiscal_years: tuple[FiscalYear, ...]
    rows: tuple[MatrixRow, ...]

    def _columns(self) -> list[tuple[Cell, ...]]:
        return list(zip(*(r.cells for r in self.rows), strict=True))

    def column_totals(self) -> list[Cell]:
        return [
            Cell(
                took_part=False,
                submitted=sum(c.submitted for c in column),
                accepted=sum(c.accepted for c in column),
            )
            for column in self._columns()
        ]

    def insurers_per_year(self) -> list[int]:
        return [sum(c.took_part for c in column) for column in self._columns()]

    @property
    def submitted(self) -> int:
        return sum(r.submitted for r in self.rows)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rows)


def list_matrix(actor: User | None) -> ListMatrix:
    """Insurers × fiscal years the actor may see (all of them for the command line):
    contracted or not, rows sent, rows accepted (all lists of that insurer and year,
    shredded ones included)."""
    base = (
        participation_matrix(actor)
        if actor is not None
        else participation_matrix_of(Insurer.objects.all())
    )
    sums = {
        (row["insurer_id"], row["fiscal_year"]): (row["submitted"] or 0, row["accepted"] or 0)
        for row in TargetList.objects.filter(insurer__in=[r.insurer for r in base.rows])
        .values("insurer_id", "fiscal_year")
        .annotate(submitted=Sum("rows_submitted"), accepted=Sum("row_count"))
    }
    rows = tuple(
        MatrixRow(
            row.insurer,
            tuple(
                Cell(took_part, *sums.get((row.insurer.pk, fy.year), (0, 0)))
                for fy, took_part in zip(base.fiscal_years, row.years, strict=True)
            ),
        )
        for row in base.rows
    )
    return ListMatrix(base.fiscal_years, rows)


def effect_groups(campaign: Campaign) -> list[Group]:
    """The campaign's call targets counted by arm, sex, age and reached: people, and
    those who took the checkup in the campaign's fiscal year."""
    year = FiscalYear(campaign.fiscal_year)
    in_year = Q(attended_on__gte=year.starts, attended_on__lte=year.ends)
    rows = (
        CallTarget.objects.filter(campaign=campaign)
        .values("holdout", "sex", "age", "reached")
        .annotate(n=Count("pk"), attended=Count("pk", filter=in_year))
        .order_by("holdout", "sex", "age", "reached")
    )
    return [Group(**row) for row in rows]


def campaign_effect(campaign: Campaign) -> Effect:
    return estimate(effect_groups(campaign))


def has_results(campaign: Campaign) -> bool:
    """Whether anyone of the campaign is known to have taken the checkup: before its
    insurer's results come, uptake reads 0 in both arms, which is no measure at all."""
    return CallTarget.objects.filter(campaign=campaign, attended_on__isnull=False).exists()


def synthetic_results(campaign: Campaign) -> bool:
    """Whether checkup results on this campaign were planted by `synth` (the demo's, a
    test's) rather than uploaded by its insurer: the audit log says so."""
    planted = Event.objects.filter(
        tag=AuditTag.CHECKUP_RESULTS_SYNTHETIC, insurer_id=campaign.insurer_id
    ).values_list("details", flat=True)
    return any(json.loads(details).get("campaign_id") == campaign.pk for details in planted)


@dataclass(frozen=True)
class EffectSummary:
    """Every campaign the actor may see that has started, with its overall comparison,
    and the differences pooled."""

    campaigns: tuple[tuple[Campaign, Comparison], ...]
    pooled: Pooled
    without_results: frozenset[int]  # campaigns no checkup result has come for yet
    synthetic: frozenset[int]  # campaigns whose results were planted by synth


def effect_summary(campaigns: QuerySet[Campaign]) -> EffectSummary:
    started = campaigns.exclude(state=Campaign.State.DRAFT).order_by("-fiscal_year", "insurer")
    rows = tuple((c, campaign_effect(c).overall) for c in started)
    without = frozenset(c.pk for c, _ in rows if not has_results(c))
    synthetic = frozenset(c.pk for c, _ in rows if synthetic_results(c))
    measured = (comparison for c, comparison in rows if c.pk not in without)
    return EffectSummary(rows, pool(measured), without, synthetic)
