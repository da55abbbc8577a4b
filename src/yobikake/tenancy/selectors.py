"""Reads of insurers and contracts, scoped to what the actor may see."""

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.utils.translation import gettext as _

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import Attempt, CallTarget, Campaign, Disposition
from yobikake.calling.selectors import outcome_counts
from yobikake.tenancy.billing import Bill, Line, Person, Reason, Terms, bill
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import BillingRule, Contract, Insurer


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


def visible_contracts(actor: User) -> QuerySet[Contract]:
    """Every contract for the federation; one's own insurer's for its staff; else none."""
    contracts = Contract.objects.select_related("insurer")
    if has_permission(actor, Permission.CONTRACT_ANY_MANAGE):
        return contracts
    if has_permission(actor, Permission.PROGRESS_OWN_VIEW) and actor.organization.insurer_id:
        return contracts.filter(insurer_id=actor.organization.insurer_id)
    return contracts.none()


def access_contract(actor: User, contract_id: int) -> Contract:
    """The contract, or `Contract.DoesNotExist` alike for "missing" and "not yours";
    the refusal is on the record."""
    return get_or_record_denial(
        visible_contracts(actor),
        contract_id,
        actor=actor,
        tag=AuditTag.CONTRACT_DENY,
        ref="details:contract_id",
    )


@dataclass(frozen=True)
class OutcomeCheck:
    """One outcome as the insurer's progress pages count it (every call) beside the
    calls this statement bills: they agree when only the simulated calls differ."""

    disposition: Disposition
    on_progress: int
    simulated: int
    billed: int

    @property
    def agrees(self) -> bool:
        return self.on_progress - self.simulated == self.billed


@dataclass(frozen=True)
class ClosingStatement:
    contract: Contract
    campaigns: tuple[Campaign, ...]
    bill: Bill
    holdout: int  # the control group: never called, never billed
    simulated: int  # calls made by the demo's simulation: never billed
    outcomes: tuple[OutcomeCheck, ...]

    @property
    def agrees(self) -> bool:
        return all(o.agrees for o in self.outcomes)

    def outcome_label(self, code: str | None) -> str:
        if code is None:
            return str(_("(not called)"))
        return next(
            (o.disposition.label for o in self.outcomes if o.disposition.code == code), code
        )

    def lines(self) -> list[tuple[str, Line, str]]:
        """The bill's lines with the last outcome and the reason in words."""
        return [
            (self.outcome_label(line.last_outcome), line, str(Reason.LABELS[line.reason]))
            for line in self.bill.lines
        ]

    def table(self) -> list[list[object]]:
        """The statement as rows for CSV/XLSX: the totals, the breakdown, the check."""
        contract, terms = self.contract, self.bill.terms
        yes, no = str(_("yes")), str(_("no"))
        table: list[list[object]] = [
            [str(_("Closing statement")), contract.insurer.name, contract.insurer.number],
            [str(_("Fiscal year")), str(contract.fy)],
            [str(_("Billing rule")), str(BillingRule(terms.rule).label), terms.unanswered_tries],
            [str(_("Unit price (yen)")), terms.unit_price_yen],
            [str(_("Cases")), self.bill.cases],
            [str(_("Amount (yen)")), self.bill.amount_yen],
            [str(_("People assigned to be called")), self.bill.persons],
            [str(_("Control group (never called, not billed)")), self.holdout],
            [str(_("Simulated calls (not billed)")), self.simulated],
            [],
            [
                str(_("Last outcome")),
                str(_("Calls")),
                str(_("Reached")),
                str(_("People")),
                str(_("Cases")),
                str(_("Why")),
            ],
        ]
        for label, line, why in self.lines():
            reached = yes if line.reached else no
            table.append([label, line.attempts, reached, line.persons, line.cases, why])
        table += [
            [],
            [
                str(_("Outcome")),
                str(_("Calls on the progress page")),
                str(_("Of which simulated")),
                str(_("Calls in this statement")),
                str(_("Agrees")),
            ],
        ]
        for o in self.outcomes:
            agrees = yes if o.agrees else no
            table.append([o.disposition.label, o.on_progress, o.simulated, o.billed, agrees])
        return table


def contract_terms(contract: Contract) -> Terms:
    return Terms(contract.unit_price_yen, contract.billing_rule, contract.unanswered_tries)


def closing_statement(contract: Contract) -> ClosingStatement:
    """The contract's bill over the calls of its campaigns (the insurer's, of its fiscal
    year). Only calls people made count: the simulation's are left out and counted
    apart; the control group is never called. Names no one."""
    campaigns = tuple(
        Campaign.objects.filter(insurer=contract.insurer, fiscal_year=contract.fiscal_year)
    )
    called = CallTarget.objects.filter(campaign__in=campaigns, holdout=False)
    calls = (
        Attempt.objects.filter(call_target__in=called, simulated=False)
        .order_by("call_target_id", "ended_at", "pk")
        .values_list("call_target_id", "disposition__code", "disposition__reached_person")
    )
    # A person counts once however many of the year's lists and campaigns hold them: told
    # apart by blind index (insured number, else kana + birth date), as leak scoping does;
    # a call target whose list was shredded is its own person.
    person_of = {
        pk: bytes(insured or kana_birth) if (insured or kana_birth) is not None else pk
        for pk, insured, kana_birth in called.values_list(
            "pk", "target__idx_insured_number", "target__idx_kana_birth"
        ).iterator(chunk_size=5000)
    }
    people: dict[object, Person] = {}
    billed: Counter[str] = Counter()
    for target_id, code, reached in calls.iterator(chunk_size=5000):
        who = person_of[target_id]
        before = people.get(who, Person(0, False, None))
        people[who] = Person(before.attempts + 1, before.reached or reached, code)
        billed[code] += 1
    never_called = len(set(person_of.values()) - set(people))
    everyone = [*people.values(), *[Person(0, False, None)] * never_called]
    simulated = dict(
        Attempt.objects.filter(call_target__campaign__in=campaigns, simulated=True)
        .values_list("disposition__code")
        .annotate(n=Count("pk"))
        .values_list("disposition__code", "n")
    )
    on_progress: Counter[str] = Counter()
    for campaign in campaigns:
        on_progress.update({d.code: n for d, n in outcome_counts(campaign)})
    outcomes = tuple(
        OutcomeCheck(d, on_progress[d.code], simulated.get(d.code, 0), billed[d.code])
        for d in Disposition.objects.all()
    )
    return ClosingStatement(
        contract=contract,
        campaigns=campaigns,
        bill=bill(everyone, contract_terms(contract)),
        holdout=CallTarget.objects.filter(campaign__in=campaigns, holdout=True).count(),
        simulated=sum(simulated.values()),
        outcomes=outcomes,
    )
