"""Leak scoping: which stored people a leaked file names, without opening any of them.

A leaked file comes in any layout: CSV, TSV or XLSX, any of the encodings Japanese
systems write, headers a broker made up or none at all. Its columns are recognised by
what they hold (`detect_columns`); each row is normalised as intake normalises a list
(`jp/`), and every blind index the row allows is computed under each insurer's index
key the row may belong to — the insurer whose municipality its address names, else all.
The stored indexes are read once, as they are, and compared; nothing is decrypted.

A stored person a row names is scored by the fields that agree (names, birth date,
phone, address, insured number, through the index kinds that cover them):

- certain: the name (kanji or kana, or both: one field) and at least two other fields;
- probable: the name and one other field, or the insured number;
- possible: the phone alone — a household's landline: a relative, not the person.

Of the people a row names, only the best-scored are kept (the same person on two years'
lists is kept on both); a relative matched only by the shared landline is kept apart
when the row also names the person.

The same wanted values are also looked up among the exports' watermark rows
(exports.models.WatermarkRow): a row that names one as surely as a probable person
(`tier_of`) is that export's own canary, so the file is a copy of that export. Such a
row names nobody else.
"""

import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from django.db import connection

from yobikake.exports.models import WatermarkRow
from yobikake.intake.models import Target, TargetList
from yobikake.intake.reading import UnreadableFile, map_headers, open_sheet
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.jp import normalize
from yobikake.jp.dates import InvalidDate, parse_date
from yobikake.jp.insured_numbers import InvalidInsuredNumber, parse_insured_number
from yobikake.synth.areas import municipality_key
from yobikake.tenancy.models import Insurer
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.records import IndexedFields

# What a column can hold, in the order a report lists the items leaked.
ITEMS = ("name", "kana", "sex", "birth", "phone", "postal", "address", "insured")
SAMPLE_ROWS = 200
SHARE = 0.6  # of a column's sampled values that must look like one kind

# The fields each index kind covers.
FIELDS = {
    IndexKind.PHONE: ("phone",),
    IndexKind.INSURED_NUMBER: ("insured",),
    IndexKind.KANA_BIRTH: ("kana", "birth"),
    IndexKind.NAME_BIRTH: ("name", "birth"),
    IndexKind.KANA_ADDRESS: ("kana", "address"),
    IndexKind.NAME_ADDRESS: ("name", "address"),
    IndexKind.KANA_PHONE: ("kana", "phone"),
}
RETRY_KINDS = frozenset(
    {IndexKind.KANA_BIRTH, IndexKind.NAME_BIRTH, IndexKind.KANA_PHONE, IndexKind.INSURED_NUMBER}
)
CERTAIN, PROBABLE, POSSIBLE = "certain", "probable", "possible"
TIER_ORDER = {CERTAIN: 3, PROBABLE: 2, POSSIBLE: 1}

# Synonyms the intake knows, in intake's field names → ours.
_INTAKE_FIELDS = {
    "name_kanji": "name",
    "name_kana": "kana",
    "sex": "sex",
    "birth_date": "birth",
    "phone": "phone",
    "postal_code": "postal",
    "address": "address",
    "insured_number": "insured",
}
_POSTAL = re.compile(r"〒?\s*\d{3}-?\d{4}")
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc\u30fb\s]+")
_IDEOGRAPH = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f々〆ヶ]")
_ADDRESS_MARK = re.compile(r"[都道府県市区町村郡]|丁目|番地?|号")
_SEX = {"1", "2", "男", "女", "男性", "女性", "M", "F", "m", "f"}


def looks_like(value: str) -> str | None:
    """Which kind of item a cell looks like, or None."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        return None
    if text in _SEX:
        return "sex"
    if _POSTAL.fullmatch(text):
        return "postal"
    if normalize.phone_key(text) and not re.search(r"[^\d\s()+\-]", text):
        return "phone"
    try:
        born = parse_date(text)
    except InvalidDate:
        pass
    else:
        return "birth" if 1890 < born.year < 2020 else None
    if _KANA.fullmatch(text):
        return "kana"
    has_digit = any(c.isdigit() for c in text) or re.search("[一二三四五六七八九十]丁目", text)
    if _IDEOGRAPH.search(text) and has_digit and _ADDRESS_MARK.search(text):
        return "address"
    if _IDEOGRAPH.search(text) and not has_digit and len(text.replace(" ", "")) <= 12:
        return "name"
    try:
        parse_insured_number(text)
    except InvalidInsuredNumber:
        return None
    return "insured"


def detect_columns(headers: list[str], sample: list[list[str]]) -> dict[int, str]:
    """Column number → item. Content decides; a header the intake knows breaks ties and
    names a column whose sample was empty. A name or kana split over two columns (surname,
    given name) keeps both: `row_fields` joins them. But an item that a known header names,
    and whose column holds it, takes no other column of an unknown header: words such as
    a results file's 結果 (不在) read as names, its 年齢 (58) as an insured number."""
    try:
        mapped = map_headers(headers).items()
        known = {col: _INTAKE_FIELDS[f] for f, col in mapped if f in _INTAKE_FIELDS}
    except UnreadableFile:
        known = {}
    detected: dict[int, str] = {}
    for col in range(max([len(headers), *(len(r) for r in sample)], default=0)):
        seen = Counter(k for r in sample if col < len(r) and (k := looks_like(r[col])))
        filled = sum(1 for r in sample if col < len(r) and r[col].strip())
        kind, count = seen.most_common(1)[0] if seen else (None, 0)
        if kind and count >= SHARE * filled:
            # "1"/"2" might be a sex code or a digit column; the header settles it.
            detected[col] = known.get(col, kind) if kind == "sex" else kind
        elif col in known and not filled:
            detected[col] = known[col]
    confirmed = {item for col, item in detected.items() if known.get(col) == item}
    return {col: item for col, item in detected.items() if col in known or item not in confirmed}


@dataclass
class LeakedRow:
    row: int
    parts: dict[IndexKind, tuple[str, ...]]
    insurers: tuple[int, ...] | None  # None: any insurer


@dataclass
class LeakFile:
    kind: str
    encoding: str
    columns: dict[int, str]
    rows: list[LeakedRow] = field(default_factory=list)
    count: int = 0

    @property
    def items(self) -> list[str]:
        present = set(self.columns.values())
        return [item for item in ITEMS if item in present]


def _joined(cells: list[str], columns: list[int]) -> str:
    return " ".join(cells[c].strip() for c in columns if c < len(cells) and cells[c].strip())


def _birth(text: str) -> date | None:
    try:
        return parse_date(text) if text else None
    except InvalidDate:
        return None


def row_fields(cells: list[str], by_item: dict[str, list[int]]) -> IndexedFields:
    return IndexedFields(
        name_kanji=_joined(cells, by_item.get("name", [])),
        name_kana=_joined(cells, by_item.get("kana", [])),
        birth_date=_birth(_joined(cells, by_item.get("birth", [])[:1])),
        phone=_joined(cells, by_item.get("phone", [])[:1]),
        address=_joined(cells, by_item.get("address", [])),
        insured_number=_joined(cells, by_item.get("insured", [])[:1]),
    )


def _address_of(parts: dict[IndexKind, tuple[str, ...]]) -> str:
    for kind in (IndexKind.KANA_ADDRESS, IndexKind.NAME_ADDRESS):
        if kind in parts:
            return parts[kind][1]
    return ""


class _InsurerByAddress:
    """The insurers a normalised address may belong to: the municipality it names (and
    every association, whose members live anywhere); None when it names none."""

    def __init__(self) -> None:
        self.municipalities: list[tuple[str, int]] = []
        self.associations: list[int] = []
        for pk, name, kind in Insurer.objects.values_list("pk", "name", "kind"):
            if kind == Insurer.Kind.NHI_ASSOCIATION:
                self.associations.append(pk)
            else:
                self.municipalities.append((municipality_key(name), pk))

    def __call__(self, address: str) -> tuple[int, ...] | None:
        found = [pk for key, pk in self.municipalities if key and key in address]
        return (*found, *self.associations) if found else None


def read_leak(path: Path, progress: Callable[[int], None] | None = None) -> LeakFile:
    """The leaked file's rows as the index parts each allows. A file whose first row is
    data, not headers, is read from its first row."""
    sheet = open_sheet(path)
    rows: Iterator[tuple[int, list[str]]] = sheet.rows
    sample: list[tuple[int, list[str]]] = []
    for item in rows:
        sample.append(item)
        if len(sample) >= SAMPLE_ROWS:
            break
    headers = sheet.headers
    header_kinds = [looks_like(h) for h in headers]
    if sum(1 for k in header_kinds if k in ("phone", "birth", "postal", "address", "kana")) >= 2:
        sample.insert(0, (1, headers))  # no header row: the first row is a person
        headers = [""] * len(headers)
    columns = detect_columns(headers, [cells for _, cells in sample])
    if not {"name", "kana", "phone", "insured"} & set(columns.values()):
        raise UnreadableFile(
            "no_person_columns",
            "No column holds names, kana, phone numbers or insured numbers.",
        )
    by_item: dict[str, list[int]] = defaultdict(list)
    for col, item in sorted(columns.items()):
        by_item[item].append(col)
    leak = LeakFile(sheet.kind, sheet.encoding, columns)
    insurers_of = _InsurerByAddress()

    def take(row: int, cells: list[str]) -> None:
        fields = row_fields(cells, by_item)
        parts = fields.parts()
        address = _address_of(parts) or normalize.address_key(fields.address)
        leak.rows.append(LeakedRow(row, parts, insurers_of(address) if address else None))
        leak.count += 1
        if progress and leak.count % 5000 == 0:
            progress(leak.count)

    for row, cells in sample:
        take(row, cells)
    for row, cells in rows:
        take(row, cells)
    return leak


@dataclass
class Found:
    """A stored person a leaked row names."""

    row: int
    target_id: int
    list_id: int
    kinds: frozenset[IndexKind]
    tier: str
    person: object  # the same for one person's targets on several years' lists


def _fields(kinds: Iterable[IndexKind]) -> set[str]:
    # The kanji name and its kana are one field: the name.
    return {"name" if f == "kana" else f for kind in kinds for f in FIELDS[kind]}


def tier_of(kinds: Iterable[IndexKind]) -> str:
    fields = _fields(kinds)
    named = "name" in fields
    if named and len(fields) >= 3:
        return CERTAIN
    if (named and len(fields) == 2) or "insured" in fields:
        return PROBABLE
    return POSSIBLE


def _score(kinds: frozenset[IndexKind]) -> tuple[int, int, int]:
    # Ties between tiers go to more fields, then more kinds (kanji and kana both).
    return TIER_ORDER[tier_of(kinds)], len(_fields(kinds)), len(kinds)


_STORED = (
    f"SELECT t.id, t.target_list_id, t.insurer_id, {', '.join(INDEX_COLUMNS.values())} "  # noqa: S608
    f"FROM {Target._meta.db_table} t JOIN {TargetList._meta.db_table} l "
    "ON l.id = t.target_list_id WHERE l.state = %s"
)
_KINDS = list(INDEX_COLUMNS)
_INSURED, _KANA_BIRTH = _KINDS.index(IndexKind.INSURED_NUMBER), _KINDS.index(IndexKind.KANA_BIRTH)


def _person(insurer_id: int, target_id: int, values: list[Any]) -> object:
    """Who a target is, across the insurer's lists of several years: its insured number's
    index, else its kana + birth date's, else itself — blind indexes, nothing opened."""
    key = values[_INSURED] or values[_KANA_BIRTH]
    return (insurer_id, bytes(key)) if key is not None else target_id


def _wanted(
    rows: Iterable[LeakedRow],
    insurers: Callable[[LeakedRow], Iterable[int]],
    kinds: frozenset[IndexKind] = frozenset(IndexKind),
) -> dict[bytes, list[tuple[int, IndexKind]]]:
    """Each blind-index value (of `kinds`) the rows allow under each insurer they may
    belong to → (row, kind). Values are keyed per insurer: one dictionary holds them all."""
    indexers: dict[int, Indexer] = {}
    wanted: dict[bytes, list[tuple[int, IndexKind]]] = defaultdict(list)
    for leaked in rows:
        parts = (
            leaked.parts
            if len(kinds) == len(IndexKind)
            else {k: p for k, p in leaked.parts.items() if k in kinds}
        )
        for insurer_id in insurers(leaked):
            indexer = indexers.get(insurer_id)
            if indexer is None:
                indexer = indexers[insurer_id] = Indexer(datakeys.index_key(insurer_id))
            for kind, value in indexer.values(parts):
                wanted[value].append((leaked.row, kind))
    return wanted


def _hits(
    wanted: dict[bytes, list[tuple[int, IndexKind]]],
    found: dict[int, dict[int, set[IndexKind]]],
    lists: dict[int, tuple[int, object]],
) -> None:
    """Read every stored index once; each value a row wanted adds (target, kind) to it,
    and the target's list and person (`Found.person`) to `lists`."""
    get = wanted.get
    with connection.cursor() as cursor:
        cursor.execute(_STORED, [TargetList.State.ACTIVE])
        while chunk := cursor.fetchmany(5000):
            for target_id, list_id, insurer_id, *values in chunk:
                for kind, value in zip(_KINDS, values, strict=True):
                    if value is None:
                        continue
                    wanting = get(bytes(value))
                    if wanting:
                        lists[target_id] = (list_id, _person(insurer_id, target_id, values))
                        for row, wanted_kind in wanting:
                            if wanted_kind is kind:
                                found[row].setdefault(target_id, set()).add(kind)


@dataclass(frozen=True)
class WatermarkFound:
    """An export's watermark row that a leaked row names."""

    row: int
    watermark_id: int
    approval_id: int
    insurer_id: int
    kinds: frozenset[IndexKind]


_WATERMARKS = (
    f"SELECT id, approval_id, insurer_id, {', '.join(INDEX_COLUMNS.values())} "  # noqa: S608
    f"FROM {WatermarkRow._meta.db_table}"
)


def _watermark_hits(wanted: dict[bytes, list[tuple[int, IndexKind]]]) -> list[WatermarkFound]:
    """The watermark row each leaked row names best, when it names it more surely than a
    phone alone (the canaries' phones come from one watched pool)."""
    hits: dict[int, dict[int, set[IndexKind]]] = defaultdict(dict)
    owners: dict[int, tuple[int, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_WATERMARKS)
        while chunk := cursor.fetchmany(5000):
            for mark_id, approval_id, insurer_id, *values in chunk:
                for kind, value in zip(_KINDS, values, strict=True):
                    for row, wanted_kind in wanted.get(bytes(value), ()) if value else ():
                        if wanted_kind is kind:
                            hits[row].setdefault(mark_id, set()).add(kind)
                            owners[mark_id] = (approval_id, insurer_id)
    found = []
    for row, marks in sorted(hits.items()):
        mark_id, kinds = max(marks.items(), key=lambda m: _score(frozenset(m[1])))
        if tier_of(kinds) != POSSIBLE:
            found.append(WatermarkFound(row, mark_id, *owners[mark_id], frozenset(kinds)))
    return found


def match(leak: LeakFile) -> tuple[list[Found], list[WatermarkFound]]:
    """The stored people each leaked row names, best-scored only; and the exports'
    watermark rows the file holds (rows that then name no one)."""
    everyone = list(Insurer.objects.values_list("pk", flat=True))
    found: dict[int, dict[int, set[IndexKind]]] = defaultdict(dict)
    lists: dict[int, tuple[int, object]] = {}
    wanted = _wanted(leak.rows, lambda r: r.insurers or everyone)
    _hits(wanted, found, lists)
    watermarks = _watermark_hits(wanted)
    for mark in watermarks:
        # A watermark row is no one — unless the row also names a stored person for sure
        # (a watermark row copied from a real person's indexes into the database must
        # not hide that person from the count): then both stand.
        named = found.get(mark.row, {})
        if not any(TIER_ORDER[tier_of(kinds)] >= TIER_ORDER[PROBABLE] for kinds in named.values()):
            found.pop(mark.row, None)
    marked = {mark.row for mark in watermarks}
    # A row whose address named an insurer but matched no one there: any other insurer
    # (a typo in the municipality, a person listed where they used to live) — by the
    # kinds without the address, which would not agree there anyway.
    retry = [r for r in leak.rows if r.insurers and r.row not in found and r.row not in marked]
    if retry:
        others = _wanted(
            retry, lambda r: [i for i in everyone if i not in (r.insurers or ())], RETRY_KINDS
        )
        _hits(others, found, lists)
    results = []
    for row, targets in sorted(found.items()):
        scored = {t: _score(frozenset(k)) for t, k in targets.items()}
        best = max(scored.values())
        for target_id, kinds in sorted(targets.items()):
            if scored[target_id] == best:
                frozen = frozenset(kinds)
                list_id, person = lists[target_id]
                results.append(Found(row, target_id, list_id, frozen, tier_of(frozen), person))
    return results, watermarks


@dataclass
class Scoped:
    leak: LeakFile
    found: list[Found]
    watermarks: list[WatermarkFound]
    seconds: float


def scope(path: Path, progress: Callable[[int], None] | None = None) -> Scoped:
    started = time.perf_counter()
    leak = read_leak(path, progress)
    found, watermarks = match(leak)
    return Scoped(leak, found, watermarks, time.perf_counter() - started)
