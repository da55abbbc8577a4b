"""Canary residents: K synthetic people planted in every list at import (setting
YOBIKAKE_CANARIES_PER_LIST) by the list's writer (`Planter`), stored like everyone
else — sealed fields, blind indexes, a row number among the real ones, inserted
between real rows and written in the batch of their neighbours — so they travel
wherever bulk data travels.

Which rows they are only the custodian knows (`record` tells it at import; the
application's database keeps nothing): a copy of the database cannot tell them apart,
and shredding the list forgets them with it. Opening one is a critical alert raised by
the custodian itself. The services that build queues, counts and exports ask `of_lists`
(the custodian tells, on its ledger) and leave them out.
"""

import random
from collections.abc import Iterable
from dataclasses import replace

from django.conf import settings

from yobikake.intake.models import Target, TargetList
from yobikake.jp import normalize
from yobikake.synth.canaries import (
    ListSample,
    canary_like,
    in_number_order,
    number_after,
    place_in_order,
)
from yobikake.synth.people import Person
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.custodian import custodian

# In a list in number order, a canary goes in a gap among the rows this far either side
# of the row at its rank (synth/canaries.py: the gap as wide as that row's room).
AROUND = 100


def _traceable(person: Person) -> bool:
    """Whether `person` has a phone or a birth date. A leaked copy of a canary modelled
    on them is still found when one typo spoils its address: scoping matches name or
    kana with each of these. The insured number does not count: leaked files often
    leave it out (bench/scope.py's do)."""
    return bool(person.phone or person.birth_date)


def _template(people: list[tuple[int, Person]], rank: int) -> int:
    """The row a canary drawn at `rank` is modelled on: that row, or when it has neither
    phone nor birth date, the next one (wrapping round the batch) that has one. A canary
    with only name, address and insured number would be lost to one typo in a leaked
    copy without the insured number. (The price: canaries never lack both, which rules
    out as a canary only the rows that do, a small share of most lists.)"""
    for step in range(len(people)):
        at = (rank + step) % len(people)
        if _traceable(people[at][1]):
            return at
    return rank


# Per process: a list's canaries never change (they go when the list is shredded).
_known: dict[int, frozenset[int]] = {}


Numbered = tuple[list[tuple[int, Person]], list[int | None]]


class Planter:
    """Where a list's canaries go, decided as its rows stream past the writer.

    Before the first row, K ranks are drawn at random among the rows the file is
    expected to hold. A canary modelled on the valid row at each of those ranks
    (synth/canaries.py; the next row with a phone or birth date when that one has
    neither) is inserted among the rows of that row's batch: just before it,
    or, when the rows come in insured-number order, where its number falls among them.
    The rows are numbered 1, 2, 3 … in the order written, canaries included (the
    writer gives the importer back each row's file row): row numbers run on without a
    tail, and without a hole where the file had an invalid row — the import's findings
    name file rows in the clear, and a hole lined up with one would say how many
    canaries came before it. Only a row found, once sealed, to repeat someone leaves a
    hole. Every real row keeps its place among its neighbours. A file shorter than
    expected gets its remaining canaries after its last row (continuing its number
    order, if it has one).

    What a canary says is drawn from the rows written last (its own batch included), so
    that it follows its own list where it stands in it; its insured number is nobody's
    on the insurer's stored lists; neither it nor its phone number is another canary's.
    """

    def __init__(self, target_list: TargetList, *, count: int, expected: int) -> None:
        self._rng = random.SystemRandom()
        self._municipality = target_list.insurer.name
        self._fiscal_year = target_list.fiscal_year
        self._insurer_id = target_list.insurer_id
        span = max(count, round(expected * 0.9))  # an estimate: keep clear of its end
        self._ranks = sorted(self._rng.sample(range(span), count))
        self._seen = 0  # valid rows
        self._numbered = 0  # rows numbered, canaries included
        self._sample = ListSample()
        self._previous: Person | None = None  # the last row numbered, canary or not
        self._given: set[str] = set()  # phone and insured numbers given to canaries
        # The insurer's index key and lists, to look insured numbers up by.
        self._stored: tuple[Indexer, list[int]] | None = None

    def _in_use(self, field: str, value: str) -> bool:
        """Whether another canary of the list has `value`, or (an insured number) someone
        on one of the insurer's lists. Phones are not looked up: the watched ones are the
        federation's, the generated ones are in exchanges no one has."""
        if value in self._given:
            return True
        if field != "insured_number":
            return False
        key = normalize.insured_number_key(value)
        if not key:
            return False
        if self._stored is None:
            lists = TargetList.objects.filter(insurer_id=self._insurer_id)
            self._stored = (
                Indexer(datakeys.index_key(self._insurer_id)),
                list(lists.values_list("pk", flat=True)),
            )
        indexer, list_ids = self._stored
        # By list: the index on (list, insured number) answers it.
        return Target.objects.filter(
            target_list_id__in=list_ids,
            idx_insured_number=indexer.value(IndexKind.INSURED_NUMBER, key),
        ).exists()

    def _canary(
        self, template: Person, neighbours: list[Person], *, after: list[Person] | None = None
    ) -> Person:
        """A canary modelled on `template`; with `after` (rows in number order), its
        insured number one step on from theirs."""
        canary = canary_like(
            template,
            municipality=self._municipality,
            fiscal_year=self._fiscal_year,
            phones=settings.YOBIKAKE_CANARY_PHONES,
            rng=self._rng,
            sample=self._sample.rows,
            neighbours=neighbours,
            in_use=self._in_use,
        )
        if after and canary.insured_number:
            number = number_after(
                after, self._rng, lambda value: self._in_use("insured_number", value)
            )
            canary = replace(canary, insured_number=number or canary.insured_number)
        self._given |= {canary.phone, canary.insured_number} - {""}
        return canary

    def mix(self, people: list[tuple[int, Person]]) -> Numbered:
        """`people` (valid rows, numbered as in their file) with a canary inserted for
        each drawn rank among them, numbered on from the rows before; and for each, the
        file row it came from (None: a canary)."""
        self._sample.add([person for _, person in people])
        due = []
        while self._ranks and self._ranks[0] < self._seen + len(people):
            due.append(self._ranks.pop(0) - self._seen)
        self._seen += len(people)
        mixed: list[tuple[int | None, Person]] = list(people)
        if due:
            ordered = in_number_order([person for _, person in people])
            for rank in due:
                mixed = self._insert(mixed, people[_template(people, rank)], ordered)
        return self._number(mixed)

    def _insert(
        self, mixed: list[tuple[int | None, Person]], at_rank: tuple[int, Person], ordered: bool
    ) -> list[tuple[int | None, Person]]:
        """`mixed` with a canary modelled on the row at its rank: where its insured number
        falls among the rows (and the one written before them) when they are in number
        order, else just before that row."""
        own = next(i for i, row in enumerate(mixed) if row is at_rank)
        if not ordered:
            return [*mixed[:own], (None, self._canary(at_rank[1], [])), *mixed[own:]]
        start = max(own - AROUND, 0)
        around = [person for _, person in mixed[start : own + AROUND + 1]]
        if start == 0 and self._previous is not None:
            around.insert(0, self._previous)
            start -= 1
        canary = self._canary(at_rank[1], around)
        at = place_in_order(canary.insured_number, around)
        at = own if at is None else start + at
        return [*mixed[:at], (None, canary), *mixed[at:]]

    def _number(self, mixed: list[tuple[int | None, Person]]) -> Numbered:
        """Row numbers for `mixed` on from the last given, and their file rows."""
        start = self._numbered + 1
        self._numbered += len(mixed)
        if mixed:
            self._previous = mixed[-1][1]
        people = [person for _, person in mixed]
        files = [row for row, _ in mixed]
        return list(zip(range(start, self._numbered + 1), people, strict=True)), files

    def tail(self) -> Numbered:
        """The canaries not yet placed (the file was shorter than expected), numbered on
        after its last row; each modelled on a row written last (one with a phone or
        birth date, where there is one)."""
        rows = self._sample.rows
        templates = [person for person in rows if _traceable(person)] or rows
        late: list[tuple[int | None, Person]] = []
        ordered = bool(rows) and in_number_order(rows)
        for _ in self._ranks if rows else ():
            written = [*rows, *(person for _, person in late)] if ordered else None
            late.append((None, self._canary(self._rng.choice(templates), [], after=written)))
        self._ranks = []
        return self._number(late)


def record(target_list: TargetList, ids: Iterable[int]) -> None:
    """Tell the custodian which of the list's rows are canaries (once per list). The
    application's database keeps nothing of it."""
    ids = sorted(ids)
    if ids:
        custodian().register_canaries(target_list.pk, ids)


def of_list(target_list: TargetList, *, campaign_id: int = 0) -> frozenset[int]:
    """The canaries of an active list (none for a shredded one: they are gone with it),
    as the custodian tells them (each telling on its ledger; `campaign_id`: the campaign
    being started, 0 for another reason). Kept in this process's memory once told."""
    known = _known.get(target_list.pk)
    if known is not None and not campaign_id:  # a campaign's start is on custody's ledger
        return known
    if target_list.state != TargetList.State.ACTIVE:
        return frozenset()
    ids = custodian().leave_out(target_list.pk, campaign_id)
    _known[target_list.pk] = ids
    return ids


def of_lists(lists: Iterable[TargetList], *, campaign_id: int = 0) -> frozenset[int]:
    return frozenset().union(*(of_list(tl, campaign_id=campaign_id) for tl in lists))


def forget(list_id: int | None = None) -> None:
    if list_id is None:
        _known.clear()
    else:
        _known.pop(list_id, None)
