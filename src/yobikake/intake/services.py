"""Writing target lists. The real file import (encodings, header mapping, validation)
comes with the intake issue; `load_target_list` is the step every import ends with, and
the synthetic loader the tests, the demo and the benchmarks use."""

from collections import Counter
from collections.abc import Sequence
from datetime import date

from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import ROWS_PER_LIST, Target, TargetIndex, TargetList
from yobikake.synth.people import Person
from yobikake.tenancy.models import Insurer
from yobikake.vault import datakeys, records
from yobikake.vault.crypto import FieldCipher

BATCH = 2000


def _age_band(age: int) -> str:
    low = age - age % 5
    return f"{low}-{low + 4}"


def _target(target_list: TargetList, row: int, person: Person, cipher: FieldCipher, year_end: date):
    target_id = target_list.pk * ROWS_PER_LIST + row
    sealed = records.seal_row(
        cipher,
        Target._meta.db_table,
        target_id,
        {
            "name_kanji": person.name_kanji,
            "name_kana": person.name_kana,
            "birth_date": person.birth_date.isoformat(),
            "phone": person.phone,
            "postal_code": person.postal_code,
            "address": person.address,
            "insured_number": person.insured_number,
        },
    )
    postal_digits = "".join(c for c in person.postal_code if c.isdigit())
    return Target(
        id=target_id,
        target_list=target_list,
        insurer_id=target_list.insurer_id,
        row_number=row,
        sex=person.sex,
        age=person.age_on(year_end),
        postal_area=postal_digits[:3],
        has_phone=bool(person.phone),
        **sealed,
    )


def _indexes(target: Target, person: Person, index_key: bytes) -> list[TargetIndex]:
    fields = records.IndexedFields(
        name_kanji=person.name_kanji,
        name_kana=person.name_kana,
        birth_date=person.birth_date,
        phone=person.phone,
        address=person.address,
        insured_number=person.insured_number,
    )
    return [
        TargetIndex(
            target_id=target.pk,
            target_list_id=target.target_list_id,
            insurer_id=target.insurer_id,
            kind=str(kind),
            value=value,
        )
        for kind, value in records.index_values(index_key, fields)
    ]


@audited(AuditTag.LIST_LOAD)
def load_target_list(
    *, actor: User, insurer: Insurer, fiscal_year: int, people: Sequence[Person]
) -> TargetList:
    """Store `people` as the insurer's list for `fiscal_year`: every personal field
    sealed under the list's new data key, blind indexes under the insurer's index key,
    in one transaction (all rows or none)."""
    require(actor, Permission.LIST_OWN_IMPORT)
    if actor.organization.insurer_id != insurer.pk:
        raise NotPermitted(_("You may send lists only for your own insurer."), code="not_yours")
    if not people:
        raise AccountError(_("The list has no one on it."), code="empty")
    if any(p.sex not in ("1", "2") for p in people):
        raise AccountError(_("Sex is coded 1 (male) or 2 (female)."), code="bad_sex")
    target_list = TargetList.objects.create(
        insurer=insurer, fiscal_year=fiscal_year, created_by=actor, row_count=len(people)
    )
    data_key, wrapped = datakeys.new_list_key(target_list.pk, insurer.pk)
    cipher = FieldCipher(data_key)
    index_key = datakeys.index_key(insurer.pk)
    year_end = date(fiscal_year + 1, 3, 31)
    counts: Counter[str] = Counter()
    for start in range(0, len(people), BATCH):
        targets, indexes = [], []
        for row, person in enumerate(people[start : start + BATCH], start + 1):
            target = _target(target_list, row, person, cipher, year_end)
            targets.append(target)
            indexes += _indexes(target, person, index_key)
            counts[f"{target.sex}:{_age_band(target.age)}"] += 1
        Target.objects.bulk_create(targets)
        TargetIndex.objects.bulk_create(indexes)
    target_list.wrapped_key = wrapped.token
    target_list.aggregates = {"sex_age_band": dict(sorted(counts.items()))}
    target_list.save(update_fields=["wrapped_key", "aggregates"])
    append_event(
        tag=AuditTag.LIST_LOAD,
        actor=actor,
        insurer_id=insurer.pk,
        list_id=target_list.pk,
        details={"rows": len(people), "fiscal_year": fiscal_year},
    )
    return target_list
