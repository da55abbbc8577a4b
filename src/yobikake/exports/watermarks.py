"""An export's watermark: fresh canary rows made for one file when it is produced, kept
only as their blind indexes under the insurer's index key (`WatermarkRow`), so that
leak scoping (incidents/scoping.py) names the export a leaked copy came from.

The rows are written on the record: an `export:watermark:create` event holds how many
there are and a digest of their indexes. Rows deleted in the database (to hide which
export leaked) or added there (to blame another export) no longer match it, and
`tampered` says which exports' watermarks cannot be trusted — scoping raises a critical
alert for each.

The watermark is made after the vault has marked the approval used, in the producer:
if writing it fails, the file is not produced (never a file without its watermark) and
the approval stays used — the insurer asks again."""

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction

from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval, WatermarkRow
from yobikake.intake.models import Target
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


_COLUMNS = tuple(INDEX_COLUMNS.values())
# How often a watermark row is drawn again while its insured number is someone's. A
# row's number keeps its template's symbol and redraws only its last digits, so short
# numbers can be nearly all taken: with nine in ten taken, 200 draws all fail with a
# chance of 0.9**200 (about 1 in 10**9); then the last draw is kept.
MAX_DRAWS = 200


def _someones(insurer_id: int, idx_insured_number: bytes | None) -> bool:
    """Whether a person the insurer sent (on any list still stored) has this insured
    number: the insurer's staff tell watermark rows by numbers that are nobody's."""
    if idx_insured_number is None:
        return False
    return Target.objects.filter(
        insurer_id=insurer_id, idx_insured_number=idx_insured_number
    ).exists()


def digest(rows: Iterable[Sequence[bytes | memoryview | None]]) -> str:
    """A digest of watermark rows' index values (in `_COLUMNS` order), independent of
    the order the rows are read in ("sha224:…", short enough for an audit detail)."""
    each = sorted(
        hashlib.sha256(b"|".join(bytes(v).hex().encode() if v else b"-" for v in row)).digest()
        for row in rows
    )
    return "sha224:" + hashlib.sha224(b"".join(each)).hexdigest()


def tampered() -> list[int]:
    """The approvals whose watermark rows in the database differ from what was recorded
    when they were made (rows deleted, added, or changed; rows without a record)."""
    recorded: dict[int, str] = {}
    for details in Event.objects.filter(tag=AuditTag.EXPORT_WATERMARK).values_list(
        "details", flat=True
    ):
        made = json.loads(details)
        recorded[made["approval_id"]] = made["digest"]
    stored: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for approval_id, *values in WatermarkRow.objects.values_list("approval_id", *_COLUMNS):
        stored[approval_id].append(tuple(values))
    return sorted(
        approval_id
        for approval_id in set(recorded) | set(stored)
        if approval_id not in recorded
        or approval_id not in stored
        or digest(stored[approval_id]) != recorded[approval_id]
    )


@transaction.atomic
def make_watermark(
    *,
    actor: Any,
    approval: Approval,
    templates: Sequence[Person],
    municipality: str,
    fiscal_year: int,
    count: int,
    rng: random.Random,
) -> list[Person]:
    """`count` synthetic people, each shaped like a real row of the file drawn at random
    (synth/canaries.py) and with an insured number (where rows have one) that no one
    the insurer sent has, their blind indexes stored against `approval`."""
    if not templates:
        return []
    indexer = Indexer(datakeys.index_key(approval.insurer_id))
    marks, rows = [], []
    for _ in range(count):
        for _try in range(MAX_DRAWS):
            mark = canary_like(
                rng.choice(templates),
                municipality=municipality,
                fiscal_year=fiscal_year,
                phones=settings.YOBIKAKE_CANARY_PHONES,
                rng=rng,
            )
            indexes = _indexes(indexer, mark)
            if not _someones(approval.insurer_id, indexes.get("idx_insured_number")):
                break
        marks.append(mark)
        rows.append(WatermarkRow(approval=approval, insurer_id=approval.insurer_id, **indexes))
    WatermarkRow.objects.bulk_create(rows)
    append_event(
        tag=AuditTag.EXPORT_WATERMARK,
        actor=actor,
        insurer_id=approval.insurer_id,
        details={
            "approval_id": approval.pk,
            "rows": len(rows),
            "digest": digest([getattr(r, c) for c in _COLUMNS] for r in rows),
        },
    )
    return marks
