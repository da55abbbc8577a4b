"""Synthetic target lists as the seed's insurers send them: one file per insurer and fiscal
year, with the variety of real lists, deterministic for a seed. For the demo, the tests and
the benchmarks. They describe no one, and their phone numbers must never be dialled (see
`yobikake.synth.areas`).

Scale: at scale S (0 < S ≤ 1) an insurer's rows total round(total × S), raised where that is
fewer than one row per file. The total is split over the insurer's fiscal years roughly
evenly (±15 %, seeded), rounded so that the years add up to it exactly. At 1.0 every
insurer's total is the seed's, 483,468 rows in all.

People: surnames weighted by frequency, given names by sex, both with their readings; real
towns of the insurer's municipality (anywhere in the prefecture for an NHI association);
three in four with a phone, landline or mobile; some married couples sharing a surname,
address and landline. About half of each list is carried over from the insurer's previous
list: same insured number, name and birth date, a year or more older, now and then moved
or with a new phone. Everyone on a valid row is 40–74 at the end of the fiscal year
(31 March).

Variety: each insurer's system has its own style (header synonyms, column order, encoding,
birth date or age and their forms, sex codes, kana width, digit width, dashes, spaces,
quoting); a share of the files are XLSX; a few rows in each list are hiragana, and about
0.2 % are invalid (`Defect`). `HEADER_SYNONYMS` and `BIRTH_FORMS` list what is written.
"""

import csv
import io
import itertools
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import jaconv
from openpyxl import Workbook

from yobikake.jp.wareki import era_of, era_year_text, fiscal_year_end
from yobikake.synth.areas import (
    MOBILE_PREFIXES,
    Address,
    Town,
    all_towns,
    landline,
    mobile,
    random_address,
    towns_of,
)
from yobikake.synth.gifu import SeedInsurer, seed_insurers
from yobikake.synth.names import given_names, surnames
from yobikake.synth.people import Person

MIN_AGE, MAX_AGE = 40, 74
YEAR_NOISE = 0.15
CARRY_OVER_SHARE = 0.5
SPOUSE_SHARE = 0.15
NO_PHONE_SHARE = 0.25
LANDLINE_SHARE = 0.55  # of those with a phone
MOVED_SHARE = 0.03
NEW_PHONE_SHARE = 0.04
HIRAGANA_SHARE = 0.01
DEFECT_SHARE = 0.002

MANIFEST = "manifest.csv"
MANIFEST_HEADER = ("file", "insurer_number", "fiscal_year", "rows")
LIST_FILE = re.compile(r"\d{6}_\d{4}\.(csv|xlsx)")


class Column(StrEnum):
    INSURED_NUMBER = "insured_number"
    NAME = "name"
    KANA = "kana"
    SEX = "sex"
    BIRTH_DATE = "birth_date"
    AGE = "age"
    POSTAL_CODE = "postal_code"
    ADDRESS = "address"
    PHONE = "phone"


HEADER_SYNONYMS: dict[Column, tuple[str, ...]] = {
    Column.INSURED_NUMBER: ("被保険者番号", "記号番号"),
    Column.NAME: ("氏名", "漢字氏名", "被保険者氏名"),
    Column.KANA: ("カナ氏名", "フリガナ", "氏名カナ"),
    Column.SEX: ("性別",),
    Column.BIRTH_DATE: ("生年月日",),
    Column.AGE: ("年齢",),
    Column.POSTAL_CODE: ("郵便番号",),
    Column.ADDRESS: ("住所",),
    Column.PHONE: ("電話番号", "連絡先電話番号"),
}
COLUMN_ORDERS = (
    (
        Column.INSURED_NUMBER,
        Column.NAME,
        Column.KANA,
        Column.SEX,
        Column.BIRTH_DATE,
        Column.POSTAL_CODE,
        Column.ADDRESS,
        Column.PHONE,
    ),
    (
        Column.NAME,
        Column.KANA,
        Column.BIRTH_DATE,
        Column.SEX,
        Column.PHONE,
        Column.POSTAL_CODE,
        Column.ADDRESS,
        Column.INSURED_NUMBER,
    ),
)


def _wareki(year: int, month: int, day: int, *, short: bool) -> str:
    try:
        era, era_year = era_of(date(year, month, day))
    except ValueError:  # a date that does not exist (a defect) takes its month's era
        era, era_year = era_of(date(year, month, 1))
    if short:
        return f"{era.letter}{era_year}.{month}.{day}"
    return f"{era_year_text(era, era_year)}{month}月{day}日"


# How birth dates are written: 1970-03-02, 1970/3/2, 昭和45年3月2日, S45.3.2.
BIRTH_FORMS: dict[str, Callable[[int, int, int], str]] = {
    "iso": lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
    "slash": lambda y, m, d: f"{y}/{m}/{d}",
    "wareki": lambda y, m, d: _wareki(y, m, d, short=False),
    "wareki_short": lambda y, m, d: _wareki(y, m, d, short=True),
}
# XLSX files in these forms hold valid birth dates as date cells, as Excel would.
DATE_CELL_FORMS = ("iso", "slash")
SEX_FORMS = {"code": {"1": "1", "2": "2"}, "kanji": {"1": "男", "2": "女"}}

# The share of insurers whose systems write each way. Dealt, not drawn, so that every way
# appears whatever the seed.
STYLE_WEIGHTS: dict[str, dict[object, float]] = {
    "encoding": {"cp932": 0.7, "utf-8": 0.2, "utf-8-sig": 0.1},
    "birth_form": {"iso": 0.25, "slash": 0.3, "wareki": 0.15, "wareki_short": 0.1, "age": 0.2},
    "sex_form": {"code": 0.6, "kanji": 0.4},
    "half_width_kana": {True: 0.2, False: 0.8},
    "wide_digits": {True: 0.15, False: 0.85},
    "dash": {"-": 0.6, "－": 0.15, "ー": 0.1, "": 0.15},
    "name_space": {"　": 0.7, " ": 0.3},
    "prefecture": {True: 0.5, False: 0.5},
    "quote_all": {True: 0.3, False: 0.7},
    "order": {0: 0.6, 1: 0.4},
}


@dataclass(frozen=True)
class ListStyle:
    """How one insurer's system writes its lists. `birth_form` is a key of `BIRTH_FORMS`, or
    "age" for files that give the age at the fiscal year's end instead; `dash` joins the
    parts of numbers and is "" for none (addresses then read 2丁目15番3号)."""

    columns: tuple[Column, ...]
    headers: tuple[str, ...]
    encoding: str
    birth_form: str
    sex_form: str
    half_width_kana: bool
    wide_digits: bool
    dash: str
    name_space: str
    prefecture: bool
    quote_all: bool


@dataclass(frozen=True)
class ListPlan:
    insurer: SeedInsurer
    fiscal_year: int
    rows: int
    style: ListStyle
    xlsx: bool

    @property
    def file_name(self) -> str:
        return (
            f"{self.insurer.synthetic_number}_{self.fiscal_year}.{'xlsx' if self.xlsx else 'csv'}"
        )


@dataclass(frozen=True)
class ManifestRow:
    file: str
    insurer_number: str
    fiscal_year: int
    rows: int


class Defect(StrEnum):
    IMPOSSIBLE_DATE = "impossible_date"  # 2月30日 and the like
    AGE_OUT_OF_RANGE = "age_out_of_range"  # 38, 39, 75 or 76 at the fiscal year's end
    EMPTY_NAME = "empty_name"
    BAD_PHONE = "bad_phone"  # two digits short


@dataclass(frozen=True)
class Entry:
    """One row of a list: the person as the insurer knows them, their address in parts,
    and what is wrong with the row, if anything."""

    person: Person
    address: Address
    defect: Defect | None = None


@dataclass(frozen=True)
class GeneratedList:
    plan: ListPlan
    entries: list[Entry]


def check_arguments(*, scale: float, xlsx_share: float) -> None:
    if not 0 < scale <= 1:
        raise ValueError(f"the scale must be more than 0 and at most 1, not {scale}")
    if not 0 <= xlsx_share <= 1:
        raise ValueError(f"the XLSX share must be between 0 and 1, not {xlsx_share}")


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights`, the parts adding up to it exactly (largest
    remainders get the rows that rounding down left over)."""
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [math.floor(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def split_rows(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` rows over `parts` years: roughly even (±15 %), at least one each, adding up
    to `total` exactly."""
    if total < parts:
        raise ValueError(f"{total} rows cannot fill {parts} lists")
    counts = _apportion(total, [1 + rng.uniform(-YEAR_NOISE, YEAR_NOISE) for _ in range(parts)])
    while 0 in counts:  # under about 1.2 rows a year: move one from the largest
        counts[counts.index(max(counts))] -= 1
        counts[counts.index(0)] += 1
    return counts


def deal[T](rng: random.Random, weights: dict[T, float], n: int) -> list[T]:
    """`n` picks in proportion to `weights`, shuffled."""
    counts = _apportion(n, list(weights.values()))
    picks = [option for option, count in zip(weights, counts, strict=True) for _ in range(count)]
    rng.shuffle(picks)
    return picks


def _styles(rng: random.Random, n: int) -> list[ListStyle]:
    dealt = {name: deal(rng, weights, n) for name, weights in STYLE_WEIGHTS.items()}
    styles = []
    for i in range(n):
        traits = {name: picks[i] for name, picks in dealt.items()}
        columns = tuple(
            Column.AGE if c is Column.BIRTH_DATE and traits["birth_form"] == "age" else c
            for c in COLUMN_ORDERS[traits.pop("order")]
        )
        headers = tuple(rng.choice(HEADER_SYNONYMS[c]) for c in columns)
        styles.append(ListStyle(columns=columns, headers=headers, **traits))
    return styles


def plan_lists(*, scale: float, seed: int, xlsx_share: float = 0.1) -> list[ListPlan]:
    """Every file to write, by insurer and then fiscal year: its rows and its style."""
    check_arguments(scale=scale, xlsx_share=xlsx_share)
    rng = random.Random(f"{seed}:plan")  # noqa: S311 - synthetic data, reproducible by design
    insurers = seed_insurers()
    styles = _styles(rng, len(insurers))
    files = sum(len(insurer.fiscal_years) for insurer in insurers)
    xlsx = iter(deal(rng, {True: xlsx_share, False: 1 - xlsx_share}, files))
    plans = []
    for insurer, style in zip(insurers, styles, strict=True):
        years = insurer.fiscal_years
        total = max(round(insurer.lists_submitted_total * scale), len(years))
        for year, rows in zip(years, split_rows(total, len(years), rng), strict=True):
            plans.append(ListPlan(insurer, year, rows, style, next(xlsx)))
    return plans


def _defect_count(rows: int) -> int:
    return max(round(rows * DEFECT_SHARE), 1 if rows >= 100 else 0)


def _is_landline(phone: str) -> bool:
    return bool(phone) and not phone.startswith(MOBILE_PREFIXES)


class _InsurerPeople:
    """The people on one insurer's lists, year after year."""

    def __init__(self, insurer: SeedInsurer, seed: int, issued_phones: set[str]) -> None:
        self.rng = random.Random(f"{seed}:people:{insurer.synthetic_number}")  # noqa: S311
        self.towns = all_towns() if insurer.is_nhi_association else towns_of(insurer.name)
        self.symbols = sorted(self.rng.sample(range(1, 100), self.rng.randint(3, 12)))
        # Numbers run on from wherever this insurer's numbering stood in 2015.
        self.serial = self.rng.randint(10_000, 2_000_000)
        self.previous: list[Entry] = []
        # Shared by all insurers: two households with one number would match each other.
        self.issued_phones = issued_phones

    def next_list(self, plan: ListPlan) -> list[Entry]:
        rng = self.rng
        year_end = fiscal_year_end(plan.fiscal_year)
        defects = _defect_count(plan.rows)
        valid = plan.rows - defects
        stayers = [e for e in self.previous if e.person.age_on(year_end) <= MAX_AGE]
        carried = rng.sample(stayers, min(len(stayers), round(valid * CARRY_OVER_SHARE)))
        entries = [self._revisit(entry) for entry in carried]
        while len(entries) < valid:
            entries.extend(self._household(year_end, room=valid - len(entries)))
        kinds = [
            d for d in Defect if d is not Defect.IMPOSSIBLE_DATE or plan.style.birth_form != "age"
        ]
        for _ in range(defects):
            kind = rng.choice(kinds)
            bad_age = rng.choice((38, 39, 75, 76)) if kind is Defect.AGE_OUT_OF_RANGE else None
            entries.append(replace(self._household(year_end, room=1, age=bad_age)[0], defect=kind))
        entries.sort(key=lambda e: e.person.insured_number)
        self.previous = [e for e in entries if e.defect is None]
        return entries

    def _household(self, year_end: date, *, room: int, age: int | None = None) -> list[Entry]:
        """A newcomer, and with some luck (and room on the list) their spouse."""
        rng = self.rng
        surname = surnames().pick(rng)
        address = random_address(self.towns, rng)
        sex = rng.choice("12")
        age = rng.randint(MIN_AGE, MAX_AGE) if age is None else age
        phone = self._phone(address.town)
        members = [self._person(surname, sex, self._birth(year_end, age), address, phone)]
        if room >= 2 and rng.random() < SPOUSE_SHARE:
            spouse_age = min(max(age + rng.randint(-6, 6), MIN_AGE), MAX_AGE)
            shared = phone if _is_landline(phone) else self._phone(address.town, landline_ok=False)
            spouse_sex = "2" if sex == "1" else "1"
            birth = self._birth(year_end, spouse_age)
            members.append(self._person(surname, spouse_sex, birth, address, shared))
        return members

    def _person(
        self, surname: tuple[str, str], sex: str, birth: date, address: Address, phone: str
    ) -> Entry:
        given, given_kana = given_names(sex).pick(self.rng)
        self.serial += self.rng.randint(1, 9)
        person = Person(
            name_kanji=f"{surname[0]} {given}",
            name_kana=f"{surname[1]} {given_kana}",
            sex=sex,
            birth_date=birth,
            phone=phone,
            postal_code=address.postal_code,
            address=address.text(),
            insured_number=f"{self.rng.choice(self.symbols):02d}-{self.serial:07d}",
        )
        return Entry(person, address)

    def _birth(self, year_end: date, age: int) -> date:
        """A birth date that makes someone `age` on `year_end` (31 March)."""
        earliest = date(year_end.year - age - 1, 4, 1)
        latest = date(year_end.year - age, 3, 31)
        return date.fromordinal(
            earliest.toordinal() + self.rng.randint(0, (latest - earliest).days)
        )

    def _phone(self, town: Town, *, landline_ok: bool = True) -> str:
        """No phone, a landline or a mobile; a number nobody else on any list has."""
        draw = self.rng.random()
        if draw < NO_PHONE_SHARE:
            return ""
        is_landline = landline_ok and draw < NO_PHONE_SHARE + (1 - NO_PHONE_SHARE) * LANDLINE_SHARE
        phone = ""
        while not phone or phone in self.issued_phones:
            phone = landline(town, self.rng) if is_landline else mobile(self.rng)
        self.issued_phones.add(phone)
        return phone

    def _revisit(self, entry: Entry) -> Entry:
        """Last year's person again, now and then moved or with a new phone."""
        draw = self.rng.random()
        if draw < MOVED_SHARE:
            address = random_address(self.towns, self.rng)
            person = entry.person
            phone = person.phone if person.phone.startswith(MOBILE_PREFIXES) else ""
            moved = replace(
                person,
                address=address.text(),
                postal_code=address.postal_code,
                phone=phone or self._phone(address.town),
            )
            return Entry(moved, address)
        if draw < MOVED_SHARE + NEW_PHONE_SHARE:
            return replace(
                entry, person=replace(entry.person, phone=self._phone(entry.address.town))
            )
        return entry


def generate_lists(plans: Sequence[ListPlan], *, seed: int) -> Iterator[GeneratedList]:
    """The people of each planned list, one list at a time: what is kept is an insurer's
    previous list and the phone numbers issued. `plans` come as `plan_lists` gives them."""
    issued_phones: set[str] = set()
    for _, insurer_plans in itertools.groupby(plans, key=lambda plan: plan.insurer.no):
        people: _InsurerPeople | None = None
        for plan in insurer_plans:
            people = people or _InsurerPeople(plan.insurer, seed, issued_phones)
            yield GeneratedList(plan, people.next_list(plan))


Cell = str | int | date


def _cells(entry: Entry, plan: ListPlan, rng: random.Random) -> list[Cell]:
    """One row as the insurer's system writes it; XLSX rows keep numbers and dates typed."""
    person, style, defect = entry.person, plan.style, entry.defect

    def widen(text: str) -> str:
        return jaconv.h2z(text, kana=False, ascii=False, digit=True) if style.wide_digits else text

    def dashed(text: str) -> str:
        return widen(text.replace("-", style.dash))

    def kana() -> str:
        if rng.random() < HIRAGANA_SHARE:
            return jaconv.kata2hira(person.name_kana).replace(" ", style.name_space)
        if style.half_width_kana:
            return jaconv.z2h(person.name_kana, kana=True, ascii=False, digit=False)
        return person.name_kana.replace(" ", style.name_space)

    def birth_date() -> Cell:
        birth = person.birth_date
        if defect is Defect.IMPOSSIBLE_DATE:
            month = rng.choice((2, 4, 6, 9, 11))
            return BIRTH_FORMS[style.birth_form](birth.year, month, 30 if month == 2 else 31)
        if plan.xlsx and style.birth_form in DATE_CELL_FORMS:
            return birth
        return BIRTH_FORMS[style.birth_form](birth.year, birth.month, birth.day)

    def phone() -> str:
        if defect is Defect.BAD_PHONE:
            return dashed((person.phone or mobile(rng))[:-2])
        return dashed(person.phone)

    age = person.age_on(fiscal_year_end(plan.fiscal_year))
    address = entry.address.text(
        prefecture=style.prefecture, dash=style.dash, space=style.name_space
    )
    cells: dict[Column, Callable[[], Cell]] = {
        Column.INSURED_NUMBER: lambda: dashed(person.insured_number),
        Column.NAME: lambda: (
            "" if defect is Defect.EMPTY_NAME else person.name_kanji.replace(" ", style.name_space)
        ),
        Column.KANA: kana,
        Column.SEX: lambda: (
            int(person.sex)
            if plan.xlsx and style.sex_form == "code"
            else SEX_FORMS[style.sex_form][person.sex]
        ),
        Column.BIRTH_DATE: birth_date,
        Column.AGE: lambda: age if plan.xlsx else str(age),
        Column.POSTAL_CODE: lambda: dashed(person.postal_code),
        Column.ADDRESS: lambda: widen(address),
        Column.PHONE: phone,
    }
    return [cells[column]() for column in style.columns]


@contextmanager
def _atomically(final: Path) -> Iterator[Path]:
    """A temporary path beside `final`, renamed to it once written, so that a killed run
    leaves no half-written file under a final name."""
    part = final.with_name(f".{final.name}.part")
    try:
        yield part
        part.replace(final)
    finally:
        part.unlink(missing_ok=True)


def _write_csv(path: Path, plan: ListPlan, rows: Iterator[list[Cell]]) -> None:
    quoting = csv.QUOTE_ALL if plan.style.quote_all else csv.QUOTE_MINIMAL
    with path.open("w", encoding=plan.style.encoding, newline="") as file:
        writer = csv.writer(file, quoting=quoting)
        writer.writerow(plan.style.headers)
        writer.writerows(rows)


_W3C_TIMES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*")


def _write_xlsx(path: Path, plan: ListPlan, rows: Iterator[list[Cell]]) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("対象者一覧")
    sheet.append(plan.style.headers)
    try:
        for row in rows:
            sheet.append(row)
    except BaseException:
        sheet.close()  # finish openpyxl's temporary file now, not when it is collected
        raise
    raw = io.BytesIO()
    workbook.save(raw)
    # openpyxl stamps the time of saving into the workbook and its zip entries; a fixed
    # time (the list's fiscal year's first morning) keeps a seed's bytes the same.
    made = datetime(plan.fiscal_year, 4, 1, 9)
    stamp = made.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with ZipFile(raw) as source, ZipFile(path, "w", ZIP_DEFLATED) as pinned:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "docProps/core.xml":
                data = _W3C_TIMES.sub(rb"\g<1>" + stamp, data)
            pinned.writestr(ZipInfo(info.filename, made.timetuple()[:6]), data, ZIP_DEFLATED)


def _write_list(out: Path, generated: GeneratedList, seed: int) -> ManifestRow:
    plan = generated.plan
    rng = random.Random(f"{seed}:render:{plan.file_name}")  # noqa: S311
    rows = (_cells(entry, plan, rng) for entry in generated.entries)
    with _atomically(out / plan.file_name) as part:
        (_write_xlsx if plan.xlsx else _write_csv)(part, plan, rows)
    return ManifestRow(plan.file_name, plan.insurer.synthetic_number, plan.fiscal_year, plan.rows)


def write_lists(
    out: Path,
    *,
    scale: float,
    seed: int,
    xlsx_share: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
) -> list[ManifestRow]:
    """Write one list file per insurer and fiscal year into `out` (made if missing), then
    `out/manifest.csv`; return the manifest's rows. `progress(rows, total)` is called after
    each file with the rows just written and the rows planned in all."""
    plans = plan_lists(scale=scale, seed=seed, xlsx_share=xlsx_share)
    total = sum(plan.rows for plan in plans)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for generated in generate_lists(plans, seed=seed):
        manifest.append(_write_list(out, generated, seed))
        if progress:
            progress(generated.plan.rows, total)
    with _atomically(out / MANIFEST) as part, part.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(astuple(row) for row in manifest)
    return manifest


def remove_lists(out: Path) -> None:
    """Remove what an earlier run wrote into `out`: list files, the manifest, and files a
    killed run left half-written. Anything else stays."""
    for path in out.iterdir():
        name = path.name
        half_written = name.startswith(".") and name.endswith(".part")
        if LIST_FILE.fullmatch(name) or name == MANIFEST or half_written:
            path.unlink()
