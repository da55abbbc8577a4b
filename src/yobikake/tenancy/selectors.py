"""Reads of insurers and contracts, scoped to what the actor may see."""

from dataclasses import dataclass

from django.db.models import QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Contract, Insurer


def visible_insurers(actor: User) -> QuerySet[Insurer]:
    """Every insurer for the federation's roles; one's own for insurer staff; else none."""
    if has_permission(actor, Permission.INSURER_ANY_VIEW):
        return Insurer.objects.all()
    if has_permission(actor, Permission.INSURER_OWN_VIEW) and actor.organization.insurer_id:
        return Insurer.objects.filter(pk=actor.organization.insurer_id)
    return Insurer.objects.none()


def access_insurer(actor: User, insurer_id: int) -> Insurer:
    """The insurer, or `Insurer.DoesNotExist` alike for "missing" and "not yours".
    The refusal is on the record either way: probing other insurers shows up."""
    return get_or_record_denial(
        visible_insurers(actor),
        insurer_id,
        actor=actor,
        tag=AuditTag.INSURER_DENY,
        ref="insurer_id",
    )


@dataclass(frozen=True)
class ParticipationRow:
    insurer: Insurer
    years: tuple[bool, ...]


@dataclass(frozen=True)
class ParticipationMatrix:
    fiscal_years: tuple[FiscalYear, ...]
    rows: tuple[ParticipationRow, ...]


def participation_matrix(actor: User) -> ParticipationMatrix:
    """Insurers × fiscal years, True where a contract exists (the seed's table)."""
    return participation_matrix_of(visible_insurers(actor))


def participation_matrix_of(visible: QuerySet[Insurer]) -> ParticipationMatrix:
    insurers = list(visible)
    pairs = set(
        Contract.objects.filter(insurer__in=insurers).values_list("insurer_id", "fiscal_year")
    )
    years = sorted({year for _, year in pairs})
    rows = tuple(ParticipationRow(i, tuple((i.pk, y) in pairs for y in years)) for i in insurers)
    return ParticipationMatrix(tuple(FiscalYear(y) for y in years), rows)


def contracts_of(insurer: Insurer) -> QuerySet[Contract]:
    return insurer.contracts.order_by("fiscal_year")
