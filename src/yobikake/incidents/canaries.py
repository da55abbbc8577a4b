"""Canary residents: K synthetic people planted in every list at import (setting
YOBIKAKE_CANARIES_PER_LIST) by the list's writer (`Planter`), stored like everyone
else — sealed fields, blind indexes, a row number among the real ones, written in the
batch of their neighbours — so they travel wherever bulk data travels.

Which rows they are is sealed under the list's data key (`CanarySet`): a copy of the
database cannot tell them apart, and shredding the list forgets them with it. The
services that build queues, counts and screens ask `of_lists` and leave them out;
the reveal gate asks `is_canary` and raises a critical alert.
"""

import json
import random
from collections.abc import Iterable

from django.conf import settings

from yobikake.incidents.models import CanarySet
from yobikake.intake.models import Target, TargetList
from yobikake.jp import normalize
from yobikake.synth.canaries import ListSample, canary_like, in_number_order
from yobikake.synth.people import Person
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.crypto import CannotOpen, FieldCipher, field_aad

TABLE = "incidents_canaryset"
PAD = 256  # the sealed set is padded to a multiple of this many bytes

# Per process: a list's canaries never change (they go when the list is shredded).
_known: dict[int, frozenset[int]] = {}


def _aad(list_id: int) -> bytes:
    return field_aad(TABLE, "sealed_ids", list_id)


def seal_ids(data_key: bytes, list_id: int, ids: Iterable[int]) -> bytes:
    text = json.dumps(sorted(ids))
    text += " " * (-len(text) % PAD)
    return FieldCipher(data_key).seal(_aad(list_id), text)


class Planter:
    """Where a list's canaries go, decided as its rows stream past the writer.

    Before the first row, K ranks are drawn at random among the rows the file is
    expected to hold. The valid row at each of those ranks gives its row number (and
    its shape, synth/canaries.py) to a canary, which is sealed and written in that
    row's batch, in its place; the real person it displaced is written after the last
    row of the file. So the canaries sit among the real rows in row numbers and in the
    order rows were written; no row is moved or written twice. A file shorter than
    expected gets its remaining canaries at the end, shuffled in among the displaced.

    What a canary says is drawn from the rows written last (its own batch included), so
    that it follows its own list where it stands in it; its insured number falls
    between its neighbours' when the rows come in number order and is nobody's on the
    insurer's stored lists; neither it nor its phone number is another canary's.
    """

    def __init__(self, target_list: TargetList, *, count: int, expected: int) -> None:
        self._rng = random.SystemRandom()
        self._municipality = target_list.insurer.name
        self._fiscal_year = target_list.fiscal_year
        self._insurer_id = target_list.insurer_id
        span = max(count, round(expected * 0.9))  # an estimate: keep clear of its end
        self._ranks = sorted(self._rng.sample(range(span), count))
        self._seen = 0
        self._sample = ListSample()
        self._previous: Person | None = None  # the last row written, canary or not
        self._given: set[str] = set()  # phone and insured numbers given to canaries
        # The insurer's index key and lists, to look insured numbers up by.
        self._stored: tuple[Indexer, list[int]] | None = None
        self.displaced: list[tuple[int, Person]] = []  # (file row, person)
        self.rows: set[int] = set()  # the canaries' row numbers

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

    def _canary(self, template: Person, neighbours: list[Person]) -> Person:
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
        self._given |= {canary.phone, canary.insured_number} - {""}
        return canary

    def mix(self, people: list[tuple[int, Person]]) -> list[tuple[int, Person]]:
        """`people` with a canary in the place of each one at a drawn rank."""
        self._sample.add([person for _, person in people])
        ordered: bool | None = None
        mixed: list[tuple[int, Person]] = []
        for at, (row, person) in enumerate(people):
            if self._ranks and self._ranks[0] == self._seen:
                self._ranks.pop(0)
                self.displaced.append((row, person))
                self.rows.add(row)
                if ordered is None:
                    ordered = in_number_order([p for _, p in people])
                around = [mixed[-1][1] if mixed else self._previous]
                around += [people[at + 1][1] if at + 1 < len(people) else None]
                neighbours = [p for p in around if p is not None] if ordered else []
                mixed.append((row, self._canary(person, neighbours)))
            else:
                mixed.append((row, person))
            self._seen += 1
        if mixed:
            self._previous = mixed[-1][1]
        return mixed

    def tail(self, after: int) -> tuple[list[tuple[int, Person]], dict[int, int]]:
        """The displaced people and the canaries not yet placed, numbered from `after`
        + 1 in random order; and, for each displaced person, new row → file row."""
        late: list[tuple[int | None, Person]] = list(self.displaced)
        if self._sample.rows:
            late += [
                (None, self._canary(self._rng.choice(self._sample.rows), [])) for _ in self._ranks
            ]
        self._ranks = []
        self._rng.shuffle(late)
        people, original = [], {}
        for row, (file_row, person) in enumerate(late, after + 1):
            people.append((row, person))
            if file_row is None:
                self.rows.add(row)
            else:
                original[row] = file_row
        self.displaced = []
        return people, original


def record(target_list: TargetList, data_key: bytes, ids: Iterable[int]) -> None:
    """Which of the list's rows are canaries, sealed under its data key."""
    ids = sorted(ids)
    if ids:
        CanarySet.objects.create(
            target_list=target_list, sealed_ids=seal_ids(data_key, target_list.pk, ids)
        )


def of_list(target_list: TargetList) -> frozenset[int]:
    """The canaries of an active list (none for a shredded one: they are gone with it)."""
    known = _known.get(target_list.pk)
    if known is not None:
        return known
    if target_list.state != TargetList.State.ACTIVE:
        return frozenset()
    stored = CanarySet.objects.filter(target_list=target_list).first()
    if stored is None:
        _check_none_planted(target_list)
        ids: frozenset[int] = frozenset()
    else:
        # A set edited or moved in the database does not open (CannotOpen): fail closed.
        cipher = FieldCipher(datakeys.list_data_key(target_list))
        ids = frozenset(json.loads(cipher.open(_aad(target_list.pk), bytes(stored.sealed_ids))))
    _known[target_list.pk] = ids
    return ids


def _check_none_planted(target_list: TargetList) -> None:
    """A list whose import planted canaries (its audit event says how many) has its set:
    a set deleted in the database would silently let them be called, counted and
    revealed. Refuse, with a critical alert."""
    from yobikake.audit.alerts import raise_alert
    from yobikake.audit.models import Alert, Event
    from yobikake.audit.tags import AuditTag

    events = Event.objects.filter(
        list_id=target_list.pk, tag__in=[AuditTag.LIST_IMPORT, AuditTag.LIST_LOAD]
    ).values_list("details", flat=True)
    if any(json.loads(details or "{}").get("canaries") for details in events):
        raise_alert(
            "vault_tampered",
            Alert.Severity.CRITICAL,
            None,
            f"the canary set of list #{target_list.pk} is missing from the database",
        )
        raise CannotOpen(f"canaries of list #{target_list.pk}")


def of_lists(lists: Iterable[TargetList]) -> frozenset[int]:
    return frozenset().union(*(of_list(tl) for tl in lists))


def is_canary(target: Target) -> bool:
    return target.pk in of_list(target.target_list)


def forget(list_id: int | None = None) -> None:
    if list_id is None:
        _known.clear()
    else:
        _known.pop(list_id, None)
