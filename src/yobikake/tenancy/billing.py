"""What a contract's calls come to: cases counted by the contract's rule, times its unit
price in integer yen, with the breakdown that justifies every case.

Pure: the selector (`tenancy.selectors.closing_statement`) reads the calls; this counts.
Every person counts at most once under the per-person rules, so the same person worked
twice in a campaign is never billed twice.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from yobikake.tenancy.models import BillingRule


@dataclass(frozen=True)
class Terms:
    unit_price_yen: int
    rule: str  # a BillingRule
    unanswered_tries: int = 3


@dataclass(frozen=True)
class Person:
    """One person assigned to be called, as the billed (real, not simulated) calls left
    them: how many calls, whether any reached them, what the last one came to."""

    attempts: int
    reached: bool
    last_outcome: str | None  # a disposition code; None when never called


class Reason:
    """Why a person's calls count (or do not): one code per breakdown row."""

    REACHED = "reached"
    TRIES = "tries"
    ATTEMPTED = "attempted"
    CALLS = "calls"
    NOT_CALLED = "not_called"
    NOT_REACHED = "not_reached"
    TOO_FEW_TRIES = "too_few_tries"

    LABELS = {
        REACHED: _("Counted once: reached"),
        TRIES: _("Counted once: not reached after the contract's number of tries"),
        ATTEMPTED: _("Counted once: called"),
        CALLS: _("Counted per call"),
        NOT_CALLED: _("Not counted: never called"),
        NOT_REACHED: _("Not counted: not reached"),
        TOO_FEW_TRIES: _("Not counted: not reached, fewer tries than the contract's number"),
    }


def counted(person: Person, terms: Terms) -> tuple[int, str]:
    """The cases one person makes under the terms, and why."""
    if terms.rule == BillingRule.PER_ATTEMPT:
        return (person.attempts, Reason.CALLS) if person.attempts else (0, Reason.NOT_CALLED)
    if person.attempts == 0:
        return 0, Reason.NOT_CALLED
    if terms.rule == BillingRule.PER_PERSON_ATTEMPTED:
        return 1, Reason.ATTEMPTED
    if person.reached:
        return 1, Reason.REACHED
    if terms.rule == BillingRule.PER_PERSON_REACHED:
        return 0, Reason.NOT_REACHED
    if terms.rule == BillingRule.REACHED_OR_TRIES:
        if person.attempts >= terms.unanswered_tries:
            return 1, Reason.TRIES
        return 0, Reason.TOO_FEW_TRIES
    raise ValueError(f"unknown billing rule {terms.rule!r}")


@dataclass(frozen=True)
class Line:
    """Persons alike in last outcome, calls and reached, and the cases they make."""

    last_outcome: str | None
    attempts: int
    reached: bool
    reason: str
    persons: int
    cases: int


@dataclass(frozen=True)
class Bill:
    terms: Terms
    persons: int
    cases: int
    lines: tuple[Line, ...]

    @property
    def amount_yen(self) -> int:
        return self.cases * self.terms.unit_price_yen

    @property
    def counted_persons(self) -> int:
        return sum(line.persons for line in self.lines if line.cases)


def bill(people: Iterable[Person], terms: Terms) -> Bill:
    """The cases and the breakdown by (last outcome, calls, reached). Lines are ordered
    counted first, then by calls and outcome, so the page reads from what is paid."""
    persons: Counter[tuple[str | None, int, bool, str]] = Counter()
    cases: Counter[tuple[str | None, int, bool, str]] = Counter()
    for person in people:
        n, reason = counted(person, terms)
        key = (person.last_outcome, person.attempts, person.reached, reason)
        persons[key] += 1
        cases[key] += n
    lines = [Line(*key, persons=persons[key], cases=cases[key]) for key in persons]
    lines.sort(
        key=lambda line: (line.cases == 0, -line.attempts, line.last_outcome or "", line.reached)
    )
    return Bill(terms, sum(persons.values()), sum(cases.values()), tuple(lines))
