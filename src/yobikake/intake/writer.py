"""Writing a list's rows, inside the caller's transaction: the synthetic loader and the
file importer alike. `ListWriter` seals every personal field to the list's public key
(each batch under a fresh key, vault/batches.py) and computes the blind indexes under
the insurer's index key (intake/sealing.py), in a worker process while the importer
checks the next rows.

`Writer` is the part that does not depend on how rows are stored: duplicate identities,
counts by sex and age band, the list's totals. bench/intake.py's baseline is a `Writer`
that stores rows in the clear, so the two differ only in the protection."""

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from yobikake.incidents import canaries
from yobikake.intake import sealing
from yobikake.intake.models import Target, TargetList
from yobikake.intake.reading import UnreadableFile
from yobikake.synth.people import Person
from yobikake.vault import batches, datakeys

BATCH = sealing.BATCH


def age_band(age: int) -> str:
    low = age - age % 5
    return f"{low}-{low + 4}"


def insert_statement(table: str, columns: Sequence[str]) -> str:
    # Written out: the ORM spent longer building model objects and bulk statements than
    # the database spent writing them (bench/intake.py).
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - fixed names only
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


class Prepared(NamedTuple):
    """A row ready to store, and what says whether it repeats someone."""

    row: int
    identity: object  # see sealing.identity
    sex: str
    age: int
    values: tuple[object, ...]  # the row as the writer stores it


class Writer:
    """Rows of one list: `submit` them a batch at a time, take back what is `prepared`,
    `store` what is kept; then `finish` (or `abandon`)."""

    def __init__(self, target_list: TargetList) -> None:
        self.target_list = target_list
        self.year_end = date(target_list.fiscal_year + 1, 3, 31)
        self.counts: Counter[str] = Counter()
        self.written = 0
        self.canaries: list[int] = []  # ids of the canaries planted (ListWriter)
        self._other_lists: bool | None = None

    def expect(self, rows: int) -> None:
        """About how many rows will be submitted (0: unknown); before the first."""

    def submit(self, people: list[tuple[int, Person]]) -> None:
        raise NotImplementedError

    def prepared(self, *, everything: bool = False) -> Iterable[list[Prepared]]:
        """Batches prepared since last asked, in the order submitted; with `everything`,
        the rest too, each as soon as it is ready."""
        raise NotImplementedError

    def store(self, rows: list[Prepared]) -> None:
        for p in rows:
            self.counts[f"{p.sex}:{age_band(p.age)}"] += 1
        self._insert(self._with_canaries([p.values for p in rows]))
        self.written += len(rows)

    def _with_canaries(self, values: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        return values

    def store_all(self, people: list[tuple[int, Person]]) -> None:
        """Store every one of `people` (a synthetic list: nothing to check)."""
        for start in range(0, len(people), BATCH):
            self.submit(people[start : start + BATCH])
            for batch in self.prepared():
                self.store(batch)
        for batch in self.prepared(everything=True):
            self.store(batch)

    def on_other_lists(self, identities: list[object]) -> set[object]:
        """Those of `identities` already on another of the insurer's lists this year."""
        if not identities:
            return set()
        if self._other_lists is None:
            self._other_lists = (
                self._same_year().exclude(pk=self.target_list.pk).exists()
            )  # seldom: most insurers send one list a year
        return self._find(identities) if self._other_lists else set()

    def finish(self, **fields: object) -> TargetList:
        """Store the count, the aggregates and `fields` on the list."""
        target_list = self.target_list
        target_list.row_count = self.written
        target_list.aggregates = {"sex_age_band": dict(sorted(self.counts.items()))}
        for name, value in fields.items():
            setattr(target_list, name, value)
        target_list.save(update_fields=["row_count", "aggregates", *fields])
        return target_list

    def abandon(self) -> None:
        """The import failed: forget what is in flight (the transaction is rolled back)."""

    def _same_year(self) -> QuerySet[TargetList]:
        """The insurer's lists of the year in use (a list replaced by a later one is
        not: its people are on the replacement if they still belong)."""
        return TargetList.objects.filter(
            insurer_id=self.target_list.insurer_id,
            fiscal_year=self.target_list.fiscal_year,
            state=TargetList.State.ACTIVE,
            superseded_by__isnull=True,
        )

    def _find(self, identities: list[object]) -> set[object]:
        raise NotImplementedError

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        raise NotImplementedError


def _id(values: tuple[object, ...]) -> int:
    return int(values[0])  # type: ignore[call-overload]  # sealing.COLUMNS starts with the id


_INSERT_TARGET = insert_statement(Target._meta.db_table, sealing.COLUMNS)


class ListWriter(Writer):
    """Seals and indexes rows in a worker, and plants the list's canaries among them
    (incidents/canaries.py `Planter`): each is inserted between real rows, sealed and
    written in their batch, and the importer never sees it.

    With canaries, the rows are stored numbered as the planter numbers them (1, 2, 3 …,
    canaries included), and what `prepared` gives back names each row by its file row,
    which the importer's findings and duplicates name."""

    def __init__(self, target_list: TargetList) -> None:
        super().__init__(target_list)
        batches.make_key_pair(target_list)
        self._index_key = datakeys.index_key(target_list.insurer_id)
        self._sealer = sealing.Sealer(settings.YOBIKAKE_IMPORT_WORKERS)
        self._planter: canaries.Planter | None = None
        self._expected = 0
        # For each batch submitted with canaries, in order: each row's file row (None:
        # a canary). The sealer gives batches back in the order submitted.
        self._file_rows: deque[list[int | None]] = deque()
        self._canary_rows: list[tuple[object, ...]] = []  # sealed, written with their batch

    def expect(self, rows: int) -> None:
        self._expected = rows

    def submit(self, people: list[tuple[int, Person]]) -> None:
        count = settings.YOBIKAKE_CANARIES_PER_LIST
        if self._planter is None and count > 0:
            self._planter = canaries.Planter(self.target_list, count=count, expected=self._expected)
        if self._planter is not None:
            people, file_rows = self._planter.mix(people)
            self._file_rows.append(file_rows)
        self._submit(people)

    def _submit(self, people: list[tuple[int, Person]]) -> None:
        if people and people[-1][0] >= sealing.ROWS_PER_LIST:  # its id would be the next list's
            raise UnreadableFile("too_many_rows", str(_("The file has too many rows.")))
        batch_id, batch_key = batches.new_batch(self.target_list)
        self._sealer.submit(
            sealing.SealJob(
                batch_key=batch_key,
                batch_id=batch_id,
                index_key=self._index_key,
                list_id=self.target_list.pk,
                insurer_id=self.target_list.insurer_id,
                year_end=self.year_end,
                people=people,
            )
        )

    def prepared(self, *, everything: bool = False) -> Iterator[list[Prepared]]:
        if everything and self._planter is not None:
            late, file_rows = self._planter.tail()
            if late:
                self._file_rows.append(file_rows)
                self._submit(late)
        batches = self._sealer.drain() if everything else self._sealer.ready()
        for batch in batches:
            if self._planter is None:
                yield [Prepared(*sealed) for sealed in batch]
                continue
            rows = []
            for (_stored, identity, sex, age, values), row in zip(
                batch, self._file_rows.popleft(), strict=True
            ):
                if row is None:
                    self._canary_rows.append(values)
                else:
                    rows.append(Prepared(row, identity, sex, age, values))
            yield rows

    def _with_canaries(self, values: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """The rows of a batch with its canaries in their places: one statement writes
        them in row order, so neither row numbers nor the order rows were written in
        set a canary apart."""
        if not self._canary_rows:
            return values
        canary_values = self._canary_rows
        self.canaries += [_id(v) for v in canary_values]
        self._canary_rows = []
        return sorted([*values, *canary_values], key=_id)

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_TARGET, rows)

    def finish(self, **fields: object) -> TargetList:
        if self._canary_rows:  # their batch had no row to keep
            self._insert(self._with_canaries([]))
        canaries.record(self.target_list, self.canaries)
        return super().finish(**fields)

    def abandon(self) -> None:
        self._sealer.abandon()
        self._file_rows.clear()

    def _find(self, identities: list[object]) -> set[object]:
        same_year = Target.objects.filter(
            target_list__in=self._same_year().exclude(pk=self.target_list.pk)
        )
        # One query per index column: an OR of the two would read the whole table.
        return {
            bytes(value)
            for column in ("idx_insured_number", "idx_kana_birth")
            for value in same_year.filter(**{f"{column}__in": identities}).values_list(
                column, flat=True
            )
        }
