"""Writing a list's rows: every personal field sealed under the list's data key, blind
indexes under the insurer's index key, in batches. Used inside the caller's
transaction by the synthetic loader and the file importer alike."""

from collections import Counter
from dataclasses import dataclass
from datetime import date

from yobikake.intake.models import ROWS_PER_LIST, Target, TargetIndex, TargetList
from yobikake.synth.people import Person
from yobikake.vault import datakeys, records
from yobikake.vault.blind import IndexKind, blind_index
from yobikake.vault.crypto import FieldCipher

BATCH = 2000


def age_band(age: int) -> str:
    low = age - age % 5
    return f"{low}-{low + 4}"


@dataclass
class Prepared:
    """One row ready to write, and the key that says whether it repeats someone: the
    insured-number index when there is one, else kana + birth date (or age)."""

    target: Target
    indexes: list[TargetIndex]
    identity: bytes


class ListWriter:
    def __init__(self, target_list: TargetList) -> None:
        self.target_list = self._list = target_list
        data_key, self._wrapped = datakeys.new_list_key(target_list.pk, target_list.insurer_id)
        self._cipher = FieldCipher(data_key)
        self._index_key = datakeys.index_key(target_list.insurer_id)
        self._year_end = date(target_list.fiscal_year + 1, 3, 31)
        self._pending: list[Prepared] = []
        self.counts: Counter[str] = Counter()
        self.written = 0

    def age(self, person: Person) -> int:
        return person.age_on(self._year_end)

    def prepare(self, row: int, person: Person) -> Prepared:
        target_id = self._list.pk * ROWS_PER_LIST + row
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
        postal_digits = "".join(c for c in person.postal_code if c.isdigit())
        target = Target(
            id=target_id,
            target_list_id=self._list.pk,
            insurer_id=self._list.insurer_id,
            row_number=row,
            sex=person.sex,
            age=self.age(person),
            postal_area=postal_digits[:3],
            has_phone=bool(person.phone),
            **sealed,
        )
        fields = records.IndexedFields(
            name_kanji=person.name_kanji,
            name_kana=person.name_kana,
            birth_date=person.birth_date,
            phone=person.phone,
            address=person.address,
            insured_number=person.insured_number,
        )
        parts = fields.parts()
        values = dict(records.index_values(self._index_key, fields))
        indexes = [
            TargetIndex(
                target_id=target_id,
                target_list_id=self._list.pk,
                insurer_id=self._list.insurer_id,
                kind=str(kind),
                value=value,
            )
            for kind, value in values.items()
        ]
        identity = values.get(IndexKind.INSURED_NUMBER) or values.get(IndexKind.KANA_BIRTH)
        if identity is None:
            kana = parts.get(IndexKind.KANA_ADDRESS, ("",))[0] or person.name_kana or "?"
            identity = blind_index(self._index_key, IndexKind.KANA_BIRTH, kana, f"age:{target.age}")
        return Prepared(target, indexes, identity)

    def add(self, prepared: Prepared) -> None:
        self._pending.append(prepared)
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        Target.objects.bulk_create([p.target for p in self._pending])
        TargetIndex.objects.bulk_create([i for p in self._pending for i in p.indexes])
        for p in self._pending:
            self.counts[f"{p.target.sex}:{age_band(p.target.age)}"] += 1
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
