"""An export's watermark: fresh canary rows made for one file when it is produced, kept
only as their blind indexes under the insurer's index key (`WatermarkRow`), so that
leak scoping (incidents/scoping.py) names the export a leaked copy came from.

The rows are written on the record: an `export:watermark:create` event holds how many
there are and a digest of their indexes. Rows deleted in the database (to hide which
export leaked) or added there (to blame another export) no longer match it, and
`tampered` says which exports' watermarks cannot be trusted — scoping raises a critical
alert for each.

The application holds none of the file's values (the custodian fills the file), so a
watermark row is drawn from a synthetic template of a real row's shape (`Shape`: its
clear columns and which fields it has), not from the row itself. It is drawn before the
custodian makes the file, which carries it as the application's own text, and recorded
in the transaction that marks the approval used: a file is never made without its
watermark on record, nor a watermark recorded without its file."""

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import transaction

from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval, WatermarkRow
from yobikake.intake.models import Target
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.jp.wareki import fiscal_year_end
from yobikake.synth.areas import PREFECTURE
from yobikake.synth.canaries import canary_like
from yobikake.synth.people import GIVEN_NAMES, SURNAMES, TOWNS, Person
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


@dataclass(frozen=True)
class Shape:
    """What the application knows of a row of the file without opening it: the clear
    columns (sex, age at the fiscal year's end) and which fields the list gave (a sealed
    value is there or not). A watermark row is drawn from a synthetic person of that
    shape, the application holding none of the file's values."""

    sex: str
    age: int
    birth_date: bool
    phone: bool
    postal_code: bool
    insured_number: bool


def template(shape: Shape, *, fiscal_year: int, rng: random.Random) -> Person:
    """A synthetic person of `shape`, written as the importer writes the synthetic
    lists (names in two parts, an address with its prefecture and 丁目): what
    `canary_like` copies the form of."""
    family, family_kana = rng.choice(SURNAMES)
    given, given_kana = rng.choice(GIVEN_NAMES[shape.sex])
    year_end = fiscal_year_end(fiscal_year)
    # Born on 1 October: `shape.age` completed on the fiscal year's last day.
    birth = date(year_end.year - shape.age - 1, 10, 1) if shape.birth_date else None
    mobile = rng.random() < 0.5
    phone = (
        f"090-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"
        if mobile
        else f"058-2{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}"
    )
    return Person(
        name_kanji=f"{family} {given}",
        name_kana=f"{family_kana} {given_kana}",
        sex=shape.sex,
        birth_date=birth,
        phone=phone if shape.phone else "",
        postal_code=f"50{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}"
        if shape.postal_code
        else "",
        address=f"{PREFECTURE}{rng.choice(TOWNS)}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番"
        f"{rng.randint(1, 20)}号",
        insured_number=(
            f"岐{rng.randint(0, 99):02d}-{rng.randint(0, 9_999_999):07d}"
            if shape.insured_number
            else ""
        ),
        age=None if shape.birth_date else shape.age,
    )


@dataclass(frozen=True)
class Watermark:
    """An export's watermark rows, drawn but not yet recorded."""

    approval: Approval
    marks: list[Person]
    rows: list[WatermarkRow]

    @transaction.atomic
    def record(self, actor: Any) -> None:
        """Store the rows' blind indexes and the event that holds their digest."""
        WatermarkRow.objects.bulk_create(self.rows)
        append_event(
            tag=AuditTag.EXPORT_WATERMARK,
            actor=actor,
            insurer_id=self.approval.insurer_id,
            details={
                "approval_id": self.approval.pk,
                "rows": len(self.rows),
                "digest": digest([getattr(r, c) for c in _COLUMNS] for r in self.rows),
            },
        )


def draw_watermark(
    *,
    approval: Approval,
    shapes: Sequence[Shape],
    municipality: str,
    fiscal_year: int,
    count: int,
    rng: random.Random,
) -> Watermark:
    """`count` synthetic people, each drawn (synth/canaries.py) from a synthetic
    template of the shape of a row of the file drawn at random, with an insured number
    (where rows have one) that no one the insurer sent has; `Watermark.record` stores
    their blind indexes against `approval`."""
    if not shapes:
        return Watermark(approval, [], [])
    indexer = Indexer(datakeys.index_key(approval.insurer_id))
    marks, rows = [], []
    for _ in range(count):
        shape = rng.choice(shapes)
        for _try in range(MAX_DRAWS):
            mark = canary_like(
                template(shape, fiscal_year=fiscal_year, rng=rng),
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
    return Watermark(approval, marks, rows)
