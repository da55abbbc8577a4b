"""Writing a list's rows: every personal field sealed under the list's data key, its
blind indexes (under the insurer's index key) beside them, in batches. Used inside the caller's
transaction by the synthetic loader and the file importer alike."""

from collections import Counter
from dataclasses import dataclass
from datetime import date

from django.db import connection

from yobikake.intake.models import INDEX_COLUMNS, ROWS_PER_LIST, Target, TargetList
from yobikake.jp import normalize
from yobikake.synth.people import Person
from yobikake.vault import datakeys, records
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.crypto import FieldCipher

BATCH = 2000


def age_band(age: int) -> str:
    low = age - age % 5
    return f"{low}-{low + 4}"


_TARGET_COLUMNS = (
    "id",
    "target_list_id",
    "insurer_id",
    "row_number",
    "sex",
    "age",
    "postal_area",
    "has_phone",
    "is_canary",
    *Target.SEALED_FIELDS,
    *INDEX_COLUMNS.values(),
)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    # Written out: the ORM spent longer building model objects and bulk statements than
    # the database spent writing them (bench/intake.py).
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - fixed names only
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


_INSERT_TARGET = _insert(Target._meta.db_table, _TARGET_COLUMNS)


@dataclass
class Prepared:
    """One row ready to write, and the key that says whether it repeats someone: the
    insured-number index when there is one, else kana + birth date (or age)."""

    row: int
    sex: str
    age: int
    target: tuple[object, ...]
    identity: bytes


class ListWriter:
    def __init__(self, target_list: TargetList) -> None:
        self.target_list = self._list = target_list
        data_key, self._wrapped = datakeys.new_list_key(target_list.pk, target_list.insurer_id)
        self._cipher = FieldCipher(data_key)
        self._indexer = Indexer(datakeys.index_key(target_list.insurer_id))
        self._year_end = date(target_list.fiscal_year + 1, 3, 31)
        self._pending: list[Prepared] = []
        self.counts: Counter[str] = Counter()
        self.written = 0

    def prepare(self, row: int, person: Person) -> Prepared:
        list_id, insurer_id = self._list.pk, self._list.insurer_id
        target_id = list_id * ROWS_PER_LIST + row
        sealed = records.seal_row(
            self._cipher,
            Target._meta.db_table,
            target_id,
            {
                "name_kanji": person.name_kanji,
                "name_kana": person.name_kana,
                "birth_date": person.birth_date.isoformat() if person.birth_date else "",
                "phone": person.phone,
                "postal_code": person.postal_code,
                "address": person.address,
                "insured_number": person.insured_number,
            },
        )
        age = person.age_on(self._year_end)
        postal_digits = "".join(c for c in person.postal_code if c.isdigit())
        fields = records.IndexedFields(
            name_kanji=person.name_kanji,
            name_kana=person.name_kana,
            birth_date=person.birth_date,
            phone=person.phone,
            address=person.address,
            insured_number=person.insured_number,
        )
        values = dict(records.index_values(self._indexer, fields))
        target = (
            target_id,
            list_id,
            insurer_id,
            row,
            person.sex,
            age,
            postal_digits[:3],
            bool(person.phone),
            False,
            *(sealed[field] for field in Target.SEALED_FIELDS),
            *(values.get(kind) for kind in INDEX_COLUMNS),
        )
        identity = values.get(IndexKind.INSURED_NUMBER) or values.get(IndexKind.KANA_BIRTH)
        if identity is None:
            kana = normalize.kana_key(person.name_kana) or "?"
            identity = self._indexer.value(IndexKind.KANA_BIRTH, kana, f"age:{age}")
        return Prepared(row, person.sex, age, target, identity)

    def add(self, prepared: Prepared) -> None:
        self._pending.append(prepared)
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_TARGET, [p.target for p in self._pending])
        for p in self._pending:
            self.counts[f"{p.sex}:{age_band(p.age)}"] += 1
        self.written += len(self._pending)
        self._pending.clear()

    def finish(self) -> TargetList:
        """Write what is pending; store the wrapped key, the count and the aggregates."""
        self.flush()
        self._list.wrapped_key = self._wrapped.token
        self._list.row_count = self.written
        self._list.aggregates = {"sex_age_band": dict(sorted(self.counts.items()))}
        self._list.save(update_fields=["wrapped_key", "row_count", "aggregates"])
        return self._list
