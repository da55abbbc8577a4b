"""Reading an incident: the affected persons per insurer × fiscal year (the layout of
the seed's participation table), the canaries found, the reporting deadlines."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval
from yobikake.incidents.models import Incident, Match
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer

# The preliminary report (速報) is due promptly, in practice within 3–5 days of becoming
# aware; the final report (確報) within 30 days, 60 when the leak was a wrongful act.
PRELIMINARY_DAYS = (3, 5)
FINAL_DAYS, FINAL_DAYS_MALICIOUS = 30, 60


@dataclass(frozen=True)
class Deadlines:
    preliminary_from: date
    preliminary_by: date
    final_by: date


def deadlines(incident: Incident) -> Deadlines:
    aware = incident.aware_on
    final = FINAL_DAYS_MALICIOUS if incident.malicious else FINAL_DAYS
    return Deadlines(
        preliminary_from=aware + timedelta(days=PRELIMINARY_DAYS[0]),
        preliminary_by=aware + timedelta(days=PRELIMINARY_DAYS[1]),
        final_by=aware + timedelta(days=final),
    )


def affected(incident: Incident) -> QuerySet[Match]:
    """The matches that name a person (not a canary, not a household's phone alone)."""
    return affected_in([incident])


def affected_in(incidents: Iterable[Incident]) -> QuerySet[Match]:
    """`affected` over several incidents at once."""
    return Match.objects.filter(incident__in=list(incidents), canary=False).exclude(
        tier=Match.Tier.POSSIBLE
    )


@dataclass(frozen=True)
class Table:
    """Affected list entries per insurer × fiscal year, with each insurer's persons."""

    years: list[int]
    # insurer, list entries per year, list entries in all, persons
    rows: list[tuple[Insurer, list[int | None], int, int]]
    totals: list[int]  # list entries per year
    entries: int
    people: int


def table(incident: Incident, insurer: Insurer | None = None) -> Table:
    """Affected list entries per insurer × fiscal year (a person on two years' lists is
    an entry in both, as the seed's table counts list rows), and the persons they are
    (that person is one)."""
    matches = affected(incident)
    if insurer is not None:
        matches = matches.filter(insurer_id=insurer.pk)
    cells = {
        (c["insurer_id"], c["fiscal_year"]): c["n"]
        for c in matches.values("insurer_id", "fiscal_year").annotate(
            n=Count("target_id", distinct=True)
        )
    }
    people = dict(
        matches.order_by()
        .values("insurer_id")
        .annotate(n=Count("person", distinct=True))
        .values_list("insurer_id", "n")
    )
    years = sorted({year for _, year in cells})
    insurers = Insurer.objects.filter(pk__in={i for i, _ in cells}).order_by("number")
    rows = []
    for ins in insurers:
        counts = [cells.get((ins.pk, year)) for year in years]
        rows.append((ins, counts, sum(c or 0 for c in counts), people.get(ins.pk, 0)))
    totals = [sum(cells.get((ins.pk, y), 0) for ins in insurers) for y in years]
    return Table(years, rows, totals, sum(totals), sum(people.values()))


def canaries_found(incident: Incident) -> list[Match]:
    """Each canary the file held: the list (insurer, fiscal year) it was planted in."""
    return list(incident.matches.filter(canary=True).order_by("insurer_id", "fiscal_year"))


def persons_by_tier(incident: Incident) -> dict[str, int]:
    """Persons named at each tier (a person on two years' lists is one)."""
    counts = (
        incident.matches.filter(canary=False)
        .order_by()
        .values("tier")
        .annotate(n=Count("person", distinct=True))
    )
    return {c["tier"]: c["n"] for c in counts}


def visible_incidents(actor: User) -> QuerySet[Incident]:
    """Every incident for the security officer; none for anyone else."""
    if has_permission(actor, Permission.INCIDENT_ANY_MANAGE):
        return Incident.objects.all()
    return Incident.objects.none()


def access_incident(actor: User, incident_id: int) -> Incident:
    """The incident, or `Incident.DoesNotExist` alike for "missing" and "not yours";
    the refusal is on the record."""
    return get_or_record_denial(
        visible_incidents(actor),
        incident_id,
        actor=actor,
        tag=AuditTag.INCIDENT_DENY,
        ref="details:incident_id",
    )


@dataclass(frozen=True)
class CanaryFound:
    leak_row: int
    list_id: int
    insurer: Insurer | None  # None: the insurer is gone from the database
    fiscal_year: FiscalYear


def canaries_named(incident: Incident) -> list[CanaryFound]:
    """`canaries_found` with each list's insurer and fiscal year, for the screens."""
    found = canaries_found(incident)
    insurers = Insurer.objects.in_bulk({m.insurer_id for m in found})
    return [
        CanaryFound(
            m.leak_row, m.target_list_id, insurers.get(m.insurer_id), FiscalYear(m.fiscal_year)
        )
        for m in found
    ]


def days_left(day: date, today: date) -> int:
    """Days from `today` to `day` (negative once it has passed)."""
    return (day - today).days


@dataclass(frozen=True)
class ExportFound:
    """An export whose watermark rows the file holds: the file is a copy of it."""

    approval_id: int
    approval: Approval | None  # None: gone from the database
    insurer: Insurer | None
    leak_rows: list[int]


def exports_found(incident: Incident) -> list[ExportFound]:
    """The exports the leaked file's watermark rows name, with who asked for each."""
    rows: dict[int, list[int]] = {}
    insurer_ids: dict[int, int] = {}
    for mark in incident.watermarks.order_by("approval_id", "leak_row"):
        rows.setdefault(mark.approval_id, []).append(mark.leak_row)
        insurer_ids[mark.approval_id] = mark.insurer_id
    approvals = Approval.objects.select_related("requested_by", "decided_by", "used_by").in_bulk(
        list(rows)
    )
    insurers = Insurer.objects.in_bulk(set(insurer_ids.values()))
    return [
        ExportFound(pk, approvals.get(pk), insurers.get(insurer_ids[pk]), leak_rows)
        for pk, leak_rows in rows.items()
    ]
