"""Writing a list's rows, inside the caller's transaction: the synthetic loader and the
file importer alike. `ListWriter` seals every personal field under the list's data key
and computes the blind indexes under the insurer's index key (intake/sealing.py), in a
worker process while the importer checks the next rows.

`Writer` is the part that does not depend on how rows are stored: duplicate identities,
counts by sex and age band, the list's totals. bench/intake.py's baseline is a `Writer`
that stores rows in the clear, so the two differ only in the protection."""

import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from yobikake.intake import sealing
from yobikake.intake.models import Target, TargetList
from yobikake.synth.people import Person
from yobikake.vault import datakeys, records
from yobikake.vault.crypto import FieldCipher

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
        self.rows: list[int] = []  # the row numbers stored
        self._other_lists: bool | None = None

    def submit(self, people: list[tuple[int, Person]]) -> None:
        raise NotImplementedError

    def prepared(self, *, everything: bool = False) -> list[list[Prepared]]:
        """Batches prepared since last asked, in the order submitted; with `everything`,
        after waiting for the rest."""
        raise NotImplementedError

    def store(self, rows: list[Prepared]) -> None:
        for p in rows:
            self.counts[f"{p.sex}:{age_band(p.age)}"] += 1
        self._insert([p.values for p in rows])
        self.rows.extend(p.row for p in rows)
        self.written += len(rows)

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
        return TargetList.objects.filter(
            insurer_id=self.target_list.insurer_id,
            fiscal_year=self.target_list.fiscal_year,
            state=TargetList.State.ACTIVE,
        )

    def _find(self, identities: list[object]) -> set[object]:
        raise NotImplementedError

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        raise NotImplementedError


_INSERT_TARGET = insert_statement(Target._meta.db_table, sealing.COLUMNS)


class ListWriter(Writer):
    def __init__(self, target_list: TargetList) -> None:
        super().__init__(target_list)
        self._data_key, self._wrapped = datakeys.new_list_key(
            target_list.pk, target_list.insurer_id
        )
        self._index_key = datakeys.index_key(target_list.insurer_id)
        self._sealer = sealing.Sealer(settings.YOBIKAKE_IMPORT_WORKERS)

    def submit(self, people: list[tuple[int, Person]]) -> None:
        self._sealer.submit(
            sealing.SealJob(
                data_key=self._data_key,
                index_key=self._index_key,
                list_id=self.target_list.pk,
                insurer_id=self.target_list.insurer_id,
                year_end=self.year_end,
                people=people,
            )
        )

    def prepared(self, *, everything: bool = False) -> list[list[Prepared]]:
        batches = self._sealer.drain() if everything else self._sealer.ready()
        return [[Prepared(*sealed) for sealed in batch] for batch in batches]

    @property
    def data_key(self) -> bytes:
        return self._data_key

    def plant(self, people: list[Person]) -> list[int]:
        """Store `people` (canaries) at row numbers drawn at random from the rows stored,
        moving each row they displace to the end of the list: the canaries' places are
        as random as anyone's, and no row number is left empty. Returns their ids."""
        chosen = secrets.SystemRandom().sample(self.rows, min(len(people), len(self.rows)))
        end = max(self.rows, default=1)
        # Displaced rows go to end+1…; canaries beyond the rows there are (a list shorter
        # than the canaries) after them.
        tail = end + len(chosen)
        places = chosen + list(range(tail + 1, tail + 1 + len(people) - len(chosen)))
        cipher = FieldCipher(self._data_key)
        base = self.target_list.pk * sealing.ROWS_PER_LIST
        for n, row in enumerate(chosen, 1):
            self._move(cipher, base + row, base + end + n, end + n)
        moved = set(chosen)
        self.rows = [r for r in self.rows if r not in moved]
        self.rows += range(end + 1, end + 1 + len(chosen))
        job = sealing.SealJob(
            data_key=self._data_key,
            index_key=self._index_key,
            list_id=self.target_list.pk,
            insurer_id=self.target_list.insurer_id,
            year_end=self.year_end,
            people=list(zip(places, people, strict=True)),
        )
        self._insert([values for *_head, values in sealing.seal_batch(job)])
        return [base + row for row in places]

    def _move(self, cipher: FieldCipher, old_id: int, new_id: int, row: int) -> None:
        """Give a stored row a new id and row number: its values are sealed afresh, bound
        to the new id (the blind indexes do not depend on it)."""
        table = Target._meta.db_table
        fields = sealing.SEALED_FIELDS
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(fields)} FROM {table} WHERE id = %s",  # noqa: S608
                [old_id],
            )
            sealed = dict(zip(fields, cursor.fetchone(), strict=True))
            plain = records.open_row(
                cipher, table, old_id, {f: bytes(v) if v else None for f, v in sealed.items()}
            )
            resealed = records.seal_row(cipher, table, new_id, plain)
            assignments = ", ".join(f"{f} = %s" for f in fields)
            cursor.execute(
                f"UPDATE {table} SET id = %s, row_number = %s, {assignments} "  # noqa: S608
                "WHERE id = %s",
                [new_id, row, *(resealed[f] for f in fields), old_id],
            )

    def finish(self, **fields: object) -> TargetList:
        return super().finish(wrapped_key=self._wrapped.token, **fields)

    def abandon(self) -> None:
        self._sealer.abandon()

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

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_TARGET, rows)
