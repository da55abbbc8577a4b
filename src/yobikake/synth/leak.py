"""Synthetic leaked files, for testing and measuring leak scoping: people taken from the
store, re-typed the way a list broker's copy of them would read, with some unrelated
people among them, and a truth file saying who each row is.

A leak is made from a random subset of the stored people of every active list, their
sealed fields opened in bulk by the custodian (purpose "synthetic"). That bypasses the
reveal gate, so the custodian does it only when set up for synthetic organisations (a
setting in custody, out of reach of the application's administrators); the
application refuses too where any organisation is real (non-demo), and each leak made
is an audit event. Canary residents of the lists the subset draws from come along with
it (a stolen copy of whole lists would hold them), unless asked otherwise.

Each row is re-typed by one noise class, dealt by the shares asked for:

- `format`: formatting only, which matching keys must see through: full- or half-width
  digits and kana, hiragana for the reading, spaces in names, phone punctuation, birth
  dates in Gregorian or 和暦 forms, addresses in 丁目・番地 or hyphens, with or without the
  prefecture or the building (the prefecture is dropped only where the city still tells
  it: elsewhere that would lose information, not only change its form).
- `typo`: formatting, and one typo in one field: a character changed, dropped or swapped
  in the name or its reading, or one digit changed in the phone number, the birth date
  or the address's block number.
- `dropped`: formatting, and one cell left empty.

Unrelated people are made like the lists' people (names by frequency, Gifu's towns).
Their mobile numbers are in a block no synthetic list issues, so a phone number never
names a stored person by accident; a name or a birth date may be someone's, as in life.
"""

import csv
import io
import random
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from itertools import batched, chain
from pathlib import Path
from typing import Any

import jaconv

from yobikake.custody.protocol import CustodyRefused, Holder, Purpose, Refusal
from yobikake.jp import normalize
from yobikake.jp.addresses import normalize_address
from yobikake.jp.dates import InvalidDate, parse_date
from yobikake.jp.wareki import era_of, era_year_text, fiscal_year_end
from yobikake.synth.areas import MOBILE_PREFIXES, all_towns, random_address
from yobikake.synth.lists import MAX_AGE, MIN_AGE, Column, deal
from yobikake.synth.names import given_names, surnames
from yobikake.synth.people import Person


class Noise(StrEnum):
    FORMAT = "format"
    TYPO = "typo"
    DROPPED = "dropped"


DEFAULT_NOISE = {Noise.FORMAT: 0.6, Noise.TYPO: 0.3, Noise.DROPPED: 0.1}
# Brokers rarely have the insured number; `--columns` can add it.
DEFAULT_COLUMNS = (
    Column.NAME,
    Column.KANA,
    Column.BIRTH_DATE,
    Column.SEX,
    Column.PHONE,
    Column.ADDRESS,
    Column.POSTAL_CODE,
)
LEAK_COLUMNS = (*DEFAULT_COLUMNS, Column.INSURED_NUMBER)
# A broker's headers, not an insurer's: the importer's synonyms need not know them.
# No header serves two columns, so `read_leak` can map them back.
BROKER_HEADERS: dict[Column, tuple[str, ...]] = {
    Column.NAME: ("名前", "氏名", "お名前", "漢字氏名"),
    Column.KANA: ("ﾌﾘｶﾞﾅ", "フリガナ", "カナ", "よみがな"),
    Column.BIRTH_DATE: ("生年月日", "誕生日", "生年月日(西暦)"),
    Column.SEX: ("性別", "男女"),
    Column.PHONE: ("TEL", "電話", "電話番号", "連絡先"),
    Column.ADDRESS: ("住所", "現住所", "住所1"),
    Column.POSTAL_CODE: ("〒", "郵便番号", "ZIP"),
    Column.INSURED_NUMBER: ("保険証番号", "記号番号"),
}
ENCODINGS = ("cp932", "utf-8", "utf-8-sig")
TRUTH_HEADER = ("leak_row", "target_id", "noise", "canary")
# The fiscal year unrelated people's ages are reckoned at (the seed's last).
UNRELATED_FISCAL_YEAR = 2021
UNRELATED_PHONE_SHARE = 0.7


class NotATestInstallation(Exception):
    """The installation holds real organisations, or its custodian is not one of
    synthetic organisations: its people must not be opened in bulk."""


@dataclass(frozen=True)
class LeakOptions:
    rows: int  # people taken from the store
    noise: Mapping[Noise, float]
    unrelated: float  # unrelated people added, as a share of `rows`
    canaries: bool
    columns: tuple[Column, ...]
    seed: int


@dataclass(frozen=True)
class LeakRow:
    """One row of a leaked file: its cells by column, and the truth about it."""

    cells: dict[Column, str]
    target_id: int | None  # None for an unrelated person
    noise: Noise | None  # None for an unrelated person (formatted, nothing lost)
    canary: bool


@dataclass(frozen=True)
class Leak:
    columns: tuple[Column, ...]
    headers: tuple[str, ...]
    encoding: str
    rows: list[LeakRow]  # in file order: leak row 2 (under the header) first
    lists: int  # lists the store's people came from


def parse_noise(text: str) -> dict[Noise, float]:
    """`format=0.6,typo=0.3,dropped=0.1` as shares; a class not named gets none."""
    shares = dict.fromkeys(Noise, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            noise, share = Noise(name.strip()), float(value)
        except ValueError:
            choices = ", ".join(n.value for n in Noise)
            raise ValueError(f"{part!r} is not CLASS=SHARE with a class among {choices}") from None
        if share < 0:
            raise ValueError(f"the share of {noise} must not be negative")
        shares[noise] = share
    if abs(sum(shares.values()) - 1) > 1e-6:
        raise ValueError(f"the noise shares must add up to 1, not {sum(shares.values()):g}")
    return shares


def parse_columns(text: str) -> tuple[Column, ...]:
    try:
        columns = tuple(Column(name.strip()) for name in text.split(",") if name.strip())
    except ValueError:
        choices = ", ".join(LEAK_COLUMNS)
        raise ValueError(f"the columns are some of {choices}, not {text!r}") from None
    unknown = [c for c in columns if c not in LEAK_COLUMNS]
    if unknown or not columns or len(set(columns)) != len(columns):
        raise ValueError(f"the columns are some of {', '.join(LEAK_COLUMNS)}, each once")
    return columns


def check_options(options: LeakOptions) -> None:
    if options.rows < 1:
        raise ValueError("a leak takes at least one stored person (--rows)")
    if options.unrelated < 0:
        raise ValueError("the share of unrelated people must not be negative")


# --- the store ---------------------------------------------------------------------------
# Django's models are imported where the store is used: re-typing people and reading and
# writing the files need no database (benchmarks use them on plaintext of their own).


def _active_lists() -> dict[int, Any]:
    from yobikake.intake.models import TargetList

    return {tl.pk: tl for tl in TargetList.objects.filter(state=TargetList.State.ACTIVE)}


# Rows a synthetic bulk open sends at once: a few MB of sealed values.
OPEN_CHUNK = 5000
# Who the custodian's ledger names for a synthetic bulk open: the command line (no
# account, as the audit log's events without an actor).
COMMAND_LINE = Holder(user_id=0, role="command-line")


def open_targets(
    ids: Collection[int] | None = None, chunk: int = OPEN_CHUNK
) -> Iterator[tuple[int, Person]]:
    """(target id, person with their fields opened) for these target ids, or for every
    person of every active list, in id order: opened in bulk by the custodian, `chunk`
    rows a request, which it does only when set up for synthetic organisations
    (`NotATestInstallation` otherwise). For tests, drills and benchmarks: this is no
    reveal gate."""
    from yobikake.intake.models import Target
    from yobikake.vault.custodian import custodian
    from yobikake.vault.exports import bulk_request

    fields = tuple(Target.SEALED_FIELDS)
    columns = ("id", "target_list_id", "insurer_id", "sex", "age", *fields)
    active = Target.objects.filter(target_list_id__in=list(_active_lists())).order_by("id")
    if ids is None:
        rows: Iterable[tuple[Any, ...]] = active.values_list(*columns).iterator(chunk_size=2000)
    else:
        ordered = sorted(ids)
        rows = chain.from_iterable(
            active.filter(pk__in=ordered[i : i + chunk]).values_list(*columns)
            for i in range(0, len(ordered), chunk)
        )
    for batch in batched(rows, chunk):
        by_insurer: dict[int, list[tuple[int, int, Sequence[Any]]]] = defaultdict(list)
        for target_id, list_id, insurer_id, _sex, _age, *sealed in batch:
            by_insurer[insurer_id].append((target_id, list_id, sealed))
        opened: dict[int, dict[str, str]] = {}
        for insurer_id, sealed_rows in by_insurer.items():
            request = bulk_request(
                holder=COMMAND_LINE,
                purpose=Purpose.SYNTHETIC,
                approval_id=0,
                insurer_id=insurer_id,
                fields=fields,
                rows=sealed_rows,
            )
            try:
                opened |= custodian().open_bulk(request).values
            except CustodyRefused as exc:
                if exc.code == Refusal.NOT_SYNTHETIC:
                    raise NotATestInstallation from None
                raise
        for target_id, _list_id, _insurer_id, sex, age, *_sealed in batch:
            yield target_id, _person(opened[target_id], sex, age)


def _person(values: Mapping[str, str], sex: str, age: int | None) -> Person:
    birth = date.fromisoformat(values["birth_date"]) if values["birth_date"] else None
    return Person(
        name_kanji=values["name_kanji"],
        name_kana=values["name_kana"],
        sex=sex,
        birth_date=birth,
        phone=values["phone"],
        postal_code=values["postal_code"],
        address=values["address"],
        insured_number=values["insured_number"],
        age=None if birth else age,
    )


def refuse_real_installation(what: str) -> None:
    """Only where every organisation is a demo one. That is a column the database's
    administrator could set, so it is the second line: the first is the custodian's,
    which opens in bulk only when set up for synthetic organisations. A refusal is on
    the record."""
    from yobikake.accounts.models import Organization
    from yobikake.audit.services import record_denial
    from yobikake.audit.tags import AuditTag

    if Organization.objects.filter(is_demo=False).exists():
        record_denial(tag=AuditTag.SYNTH_LEAK, actor=None, reason=f"not_a_test_{what}")
        raise NotATestInstallation


def leak_from_store(options: LeakOptions) -> Leak:
    """A leaked file of `options.rows` stored people (and the canaries and unrelated
    people asked for), the same for a seed and a database. Refused (`NotATestInstallation`)
    where any organisation is real, or by a custodian not set up for synthetic
    organisations; writes an audit event before opening anyone (and a refusal after it,
    when the custodian refuses)."""
    from yobikake.audit.services import append_event, record_denial
    from yobikake.audit.tags import AuditTag
    from yobikake.incidents import canaries
    from yobikake.intake.models import Target

    check_options(options)
    refuse_real_installation("leak")
    rng = random.Random(f"{options.seed}:leak")  # noqa: S311 - synthetic, reproducible
    lists = _active_lists()
    canary_ids = canaries.of_lists(lists.values())
    stored = [
        (pk, list_id)
        for pk, list_id in Target.objects.filter(target_list_id__in=list(lists))
        .order_by("id")
        .values_list("id", "target_list_id")
        .iterator(chunk_size=10_000)
        if pk not in canary_ids
    ]
    if options.rows > len(stored):
        raise ValueError(
            f"the store holds {len(stored):,} people (canaries aside), fewer than {options.rows:,}"
        )
    sample = rng.sample(stored, options.rows)
    drawn_lists = {list_id for _, list_id in sample}
    planted = sorted(canaries.of_lists(lists[i] for i in drawn_lists)) if options.canaries else []
    unrelated = round(options.rows * options.unrelated)
    append_event(
        tag=AuditTag.SYNTH_LEAK,
        actor=None,
        details={
            "rows": options.rows,
            "canary_rows": len(planted),
            "unrelated": unrelated,
            "lists": len(drawn_lists),
            "seed": options.seed,
        },
    )
    sources = [*sorted(pk for pk, _ in sample), *planted]
    try:
        people = dict(open_targets(sources))
    except NotATestInstallation:
        record_denial(tag=AuditTag.SYNTH_LEAK, actor=None, reason="not_a_test_custodian")
        raise
    # Canaries are re-typed like everyone else: the broker cannot tell them apart.
    noises = deal(rng, dict(options.noise), len(sources))
    style = _BrokerStyle.pick(rng, options.columns)
    rows = []
    for i, (pk, noise) in enumerate(zip(sources, noises, strict=True)):
        cells, applied = retype(rng, people[pk], style.columns, noise)
        rows.append(LeakRow(cells, pk, applied, canary=i >= len(sample)))
    for person in unrelated_people(rng, unrelated):
        cells, _ = retype(rng, person, style.columns, None)
        rows.append(LeakRow(cells, None, None, canary=False))
    rng.shuffle(rows)
    return Leak(style.columns, style.headers, style.encoding, rows, len(drawn_lists))


# --- unrelated people --------------------------------------------------------------------


def unrelated_people(rng: random.Random, count: int) -> list[Person]:
    """People on no list: anywhere in Gifu, 40–74, a mobile or no phone."""
    towns = all_towns()
    year_end = fiscal_year_end(UNRELATED_FISCAL_YEAR)
    people = []
    for _ in range(count):
        sex = rng.choice("12")
        surname, surname_kana = surnames().pick(rng)
        given, given_kana = given_names(sex).pick(rng)
        age = rng.randint(MIN_AGE, MAX_AGE)
        earliest = date(year_end.year - age - 1, 4, 1)
        address = random_address(towns, rng)
        phone = ""
        if rng.random() < UNRELATED_PHONE_SHARE:
            # Synthetic lists' mobiles run 0X0-1000-0000 up: below that is no one's.
            phone = f"{rng.choice(MOBILE_PREFIXES)}-0{rng.randint(0, 999):03d}-"
            phone += f"{rng.randint(0, 9999):04d}"
        people.append(
            Person(
                name_kanji=f"{surname} {given}",
                name_kana=f"{surname_kana} {given_kana}",
                sex=sex,
                birth_date=date.fromordinal(earliest.toordinal() + rng.randint(0, 364)),
                phone=phone,
                postal_code=address.postal_code,
                address=address.text(),
                insured_number="",
            )
        )
    return people


# --- re-typing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _BrokerStyle:
    """What one broker's file looks like as a whole; the rows vary within it."""

    columns: tuple[Column, ...]
    headers: tuple[str, ...]
    encoding: str

    @classmethod
    def pick(cls, rng: random.Random, columns: Sequence[Column]) -> "_BrokerStyle":
        # Brokers keep the name first; the rest comes in whatever order they merged it.
        rest = [c for c in columns if c is not Column.NAME]
        rng.shuffle(rest)
        order = [c for c in columns if c is Column.NAME] + rest
        headers = tuple(rng.choice(BROKER_HEADERS[c]) for c in order)
        return cls(tuple(order), headers, rng.choice(ENCODINGS))


_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９－")
_DIGIT = re.compile(r"\d")
# The block number closing the town part of a normalised address (本町2-15-3).
_BLOCK = re.compile(r"(\d+(?:-\d+)*)$")
_NAME_KANJI = "田中山本川村井上木下原藤野佐高小松林森島石橋斎岡和子美恵正雄一郎健太幸久"
_KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
_SEX_FORMS = (("1", "2"), ("男", "女"), ("M", "F"), ("男性", "女性"))


def _wide(text: str, rng: random.Random, share: float = 0.2) -> str:
    return text.translate(_WIDE) if rng.random() < share else text


def _name(rng: random.Random, name: str) -> str:
    return rng.choice(("", " ", "　", "  ")).join(name.split())


def _kana(rng: random.Random, kana: str) -> str:
    form = rng.choices(("katakana", "half", "hiragana"), weights=(6, 3, 1))[0]
    parts = kana.split()
    if form == "half":
        return rng.choice(("", " ")).join(
            jaconv.z2h(p, kana=True, ascii=False, digit=False) for p in parts
        )
    if form == "hiragana":
        parts = [jaconv.kata2hira(p) for p in parts]
    return rng.choice(("", " ", "　")).join(parts)


def _birth(rng: random.Random, birth: date | None) -> str:
    if birth is None:
        return ""
    y, m, d = birth.year, birth.month, birth.day
    form = rng.choice(("slash", "dash", "iso", "wareki"))
    if form == "wareki":
        era, year = era_of(birth)
        return _wide(f"{era_year_text(era, year)}{m}月{d}日", rng)
    text = {"slash": f"{y}/{m:02d}/{d:02d}", "dash": f"{y}-{m}-{d}", "iso": birth.isoformat()}
    return _wide(text[form], rng, 0.1)


def _phone(rng: random.Random, phone: str) -> str:
    if not phone:
        return ""
    groups = phone.split("-")
    digits = "".join(groups)
    if len(groups) != 3:
        return _wide(digits, rng)
    a, b, c = groups
    return _wide(rng.choice((f"{a}-{b}-{c}", digits, f"{a}({b}){c}")), rng)


def _postal(rng: random.Random, postal: str) -> str:
    digits = "".join(c for c in postal if c.isdigit())
    if len(digits) != 7:
        return postal
    hyphenated = f"{digits[:3]}-{digits[3:]}"
    return _wide(rng.choice((hyphenated, digits, f"〒{hyphenated}")), rng)


def _block_text(numbers: list[str], kanji: bool, dash: str) -> str:
    if not kanji:
        return dash.join(numbers)
    if len(numbers) == 3:
        return "{}丁目{}番{}号".format(*numbers)
    return f"{numbers[0]}番地" + "".join(numbers[1:])


def _address(rng: random.Random, address: str, *, typo: bool = False) -> str | None:
    """The address re-typed; with `typo`, one digit of its block number changed (None
    when it has no block number to change). Without a typo its key stays the source's."""
    parsed = normalize_address(address)
    town, _, building = parsed.rest.partition(" ")
    block = _BLOCK.search(town)
    if not parsed.city or block is None:
        return None if typo else _wide(address, rng)
    numbers = block[1].split("-")
    if typo:
        numbers = _digit_typo(rng, numbers)
    head = parsed.city + town[: block.start()]
    kanji = rng.random() < 0.5
    tail = ""
    if building and rng.random() < 0.7:
        tail = rng.choice((" ", "　", "")) + building
    prefixes = [""] if rng.random() < 0.4 else []
    candidates = [
        f"{prefix}{head}{_block_text(numbers, form, dash)}{tail}"
        for prefix in [*prefixes, parsed.prefecture]
        for form, dash in ((kanji, rng.choice(("-", "－", "‐"))), (False, "-"))
    ]
    # Dropping the prefecture of a city whose name other prefectures share loses it, and
    # so, rarely, may a form the normaliser reads otherwise: keep the first that holds.
    for candidate in candidates:
        key = normalize.address_key(candidate)
        if (bool(key) and key != parsed.key) if typo else key == parsed.key:
            return _wide(candidate, rng)
    return None if typo else _wide(address, rng)


def _digit_typo(rng: random.Random, numbers: list[str]) -> list[str]:
    """One digit of one number changed (no number made to start with 0)."""
    which = rng.randrange(len(numbers))
    digits = list(numbers[which])
    at = rng.randrange(len(digits))
    lowest = 1 if at == 0 else 0
    digits[at] = rng.choice([str(d) for d in range(lowest, 10) if str(d) != digits[at]])
    return [*numbers[:which], "".join(digits), *numbers[which + 1 :]]


def _text_typo(
    rng: random.Random, text: str, alphabet: str, key: Callable[[str], str]
) -> str | None:
    """A character changed, dropped or swapped with its neighbour, such that the
    matching `key` of the text changes; None if no try did."""
    for _ in range(20):
        positions = [i for i, c in enumerate(text) if not c.isspace()]
        i = rng.choice(positions)
        kind = rng.choice(("change", "drop", "swap"))
        chars = list(text)
        if kind == "change":
            chars[i] = rng.choice(alphabet)
        elif kind == "drop" and len(positions) > 2:
            del chars[i]
        elif kind == "swap" and i + 1 in positions and chars[i] != chars[i + 1]:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            continue
        typed = "".join(chars)
        if key(typed) and key(typed) != key(text):
            return typed
    return None


def _phone_typo(rng: random.Random, phone: str) -> str:
    at = rng.choice([m.start() for m in _DIGIT.finditer(phone)][1:])  # never the leading 0
    digit = rng.choice([d for d in "0123456789" if d != phone[at]])
    return phone[:at] + digit + phone[at + 1 :]


def _birth_typo(rng: random.Random, birth: date) -> date:
    text = birth.isoformat()
    while True:
        at = rng.choice([m.start() for m in _DIGIT.finditer(text)])
        typed = text[:at] + rng.choice([d for d in "0123456789" if d != text[at]]) + text[at + 1 :]
        try:
            day = date.fromisoformat(typed)
        except ValueError:
            continue
        if 1900 <= day.year <= 2010:
            return day


def _with_typo(rng: random.Random, person: Person, columns: Sequence[Column]) -> Person | None:
    """The person with one typo in one of the `columns` they have a value in (None if
    none of them can take one)."""
    fields = [
        c
        for c in (Column.NAME, Column.KANA, Column.PHONE, Column.BIRTH_DATE, Column.ADDRESS)
        if c in columns and _value(person, c)
    ]
    rng.shuffle(fields)
    for column in fields:
        if column is Column.NAME:
            typed = _text_typo(rng, person.name_kanji, _NAME_KANJI, normalize.name_key)
            if typed:
                return replace(person, name_kanji=typed)
        elif column is Column.KANA:
            typed = _text_typo(rng, person.name_kana, _KANA, normalize.kana_key)
            if typed:
                return replace(person, name_kana=typed)
        elif column is Column.PHONE:
            return replace(person, phone=_phone_typo(rng, person.phone))
        elif column is Column.BIRTH_DATE and person.birth_date:
            return replace(person, birth_date=_birth_typo(rng, person.birth_date))
        elif column is Column.ADDRESS:
            typed = _address(rng, person.address, typo=True)
            if typed:
                # Re-typed already: the cell is written as it stands.
                return replace(person, address=typed)
    return None


def _value(person: Person, column: Column) -> str:
    values = {
        Column.NAME: person.name_kanji,
        Column.KANA: person.name_kana,
        Column.BIRTH_DATE: person.birth_date.isoformat() if person.birth_date else "",
        Column.SEX: person.sex,
        Column.PHONE: person.phone,
        Column.ADDRESS: person.address,
        Column.POSTAL_CODE: person.postal_code,
        Column.INSURED_NUMBER: person.insured_number,
    }
    return values[column]


def _cells(
    rng: random.Random, person: Person, columns: Sequence[Column], *, typed_address: bool
) -> dict[Column, str]:
    sex_form = rng.choice(_SEX_FORMS)
    render = {
        Column.NAME: lambda: _name(rng, person.name_kanji),
        Column.KANA: lambda: _kana(rng, person.name_kana),
        Column.BIRTH_DATE: lambda: _birth(rng, person.birth_date),
        Column.SEX: lambda: sex_form[person.sex == "2"] if person.sex in ("1", "2") else "",
        Column.PHONE: lambda: _phone(rng, person.phone),
        Column.ADDRESS: lambda: person.address if typed_address else _address(rng, person.address),
        Column.POSTAL_CODE: lambda: _postal(rng, person.postal_code),
        Column.INSURED_NUMBER: lambda: person.insured_number.replace("-", rng.choice(("-", ""))),
    }
    return {column: render[column]() or "" for column in columns}


def retype(
    rng: random.Random, person: Person, columns: Sequence[Column], noise: Noise | None
) -> tuple[dict[Column, str], Noise | None]:
    """A person's cells as a broker's file would hold them, re-typed by `noise` (None:
    formatting only, for an unrelated person), and the noise class that was applied:
    `format` where the person has no value that could take the typo or lose a cell."""
    typed_address = False
    if noise is Noise.TYPO:
        typed = _with_typo(rng, person, columns)
        if typed is None:
            noise = Noise.FORMAT
        else:
            typed_address = typed.address != person.address
            person = typed
    cells = _cells(rng, person, columns, typed_address=typed_address)
    if noise is Noise.DROPPED:
        filled = [c for c in columns if cells[c]]
        if filled:
            cells[rng.choice(filled)] = ""
        else:
            noise = Noise.FORMAT
    return cells, noise


# --- files -------------------------------------------------------------------------------


def write_leak(leak: Leak, out: Path, truth: Path | None = None) -> str:
    """Write the leaked file (and the truth beside it, if asked); returns the encoding
    used: the broker's, or UTF-8 with a BOM where CP932 cannot hold a row."""
    lines = [list(leak.headers), *([row.cells[c] for c in leak.columns] for row in leak.rows)]
    encoding = leak.encoding
    if encoding == "cp932" and not _fits(lines, encoding):
        encoding = "utf-8-sig"
    with out.open("w", encoding=encoding, newline="") as file:
        csv.writer(file).writerows(lines)
    if truth is not None:
        with truth.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(TRUTH_HEADER)
            writer.writerows(
                (
                    number,
                    "" if row.target_id is None else row.target_id,
                    row.noise or "",
                    int(row.canary),
                )
                for number, row in enumerate(leak.rows, start=2)
            )
    return encoding


def _fits(lines: list[list[str]], encoding: str) -> bool:
    try:
        for line in lines:
            "".join(line).encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def read_leak(path: Path) -> list[dict[Column, str]]:
    """A leaked file written by `write_leak` back as rows of cells by column, in file
    order (the first is leak row 2). The headers are mapped back by `BROKER_HEADERS`."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        break
    else:
        raise ValueError(f"{path} is neither UTF-8 nor CP932")
    header, *rows = csv.reader(io.StringIO(text, newline=""))
    by_header = {h: column for column, headers in BROKER_HEADERS.items() for h in headers}
    columns = [by_header[h] for h in header]
    return [dict(zip(columns, row, strict=True)) for row in rows]


@dataclass(frozen=True)
class TruthRow:
    leak_row: int
    target_id: int | None
    noise: Noise | None
    canary: bool


def read_truth(path: Path) -> list[TruthRow]:
    with path.open(encoding="utf-8", newline="") as file:
        return [
            TruthRow(
                leak_row=int(row["leak_row"]),
                target_id=int(row["target_id"]) if row["target_id"] else None,
                noise=Noise(row["noise"]) if row["noise"] else None,
                canary=row["canary"] == "1",
            )
            for row in csv.DictReader(file)
        ]


def birth_date_of(text: str) -> date | None:
    """A leaked birth date cell as a date (None when empty or unreadable)."""
    try:
        return parse_date(text)
    except InvalidDate:
        return None
