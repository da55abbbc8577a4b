"""An export's watermark: fresh canary rows made for one file when it is produced, kept
only as their blind indexes under the insurer's index key (`WatermarkRow`), so that
leak scoping (incidents/scoping.py) names the export a leaked copy came from."""

import random
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from yobikake.exports.models import Approval, WatermarkRow
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.synth.canaries import canary_like
from yobikake.synth.people import Person
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer
from yobikake.vault.records import IndexedFields


def _indexes(indexer: Indexer, person: Person) -> dict[str, bytes]:
    fields = IndexedFields(
        name_kanji=person.name_kanji,
        name_kana=person.name_kana,
        birth_date=person.birth_date,
        phone=person.phone,
        address=person.address,
        insured_number=person.insured_number,
    )
    return {INDEX_COLUMNS[kind]: value for kind, value in indexer.values(fields.parts())}


@transaction.atomic
def make_watermark(
    *,
    approval: Approval,
    templates: Sequence[Person],
    municipality: str,
    fiscal_year: int,
    count: int,
    rng: random.Random,
) -> list[Person]:
    """`count` synthetic people, each shaped like a real row of the file drawn at random
    (synth/canaries.py), their blind indexes stored against `approval`."""
    if not templates:
        return []
    indexer = Indexer(datakeys.index_key(approval.insurer_id))
    marks = [
        canary_like(
            rng.choice(templates),
            municipality=municipality,
            fiscal_year=fiscal_year,
            phones=settings.YOBIKAKE_CANARY_PHONES,
            rng=rng,
        )
        for _ in range(count)
    ]
    WatermarkRow.objects.bulk_create(
        WatermarkRow(approval=approval, insurer_id=approval.insurer_id, **_indexes(indexer, mark))
        for mark in marks
    )
    return marks
