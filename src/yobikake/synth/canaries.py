"""Canary residents: synthetic people who look like the rest of an insurer's list.

Each canary is modelled on a real row of the same list (its template): the same fields
present or missing (a list that gives only ages gets a canary with only an age; no
insured number where the list has none), written the same way (spacing in names,
half-width kana, hyphens in phones and postal codes, the prefecture and 丁目 or hyphen
form in addresses) — so neither a column left empty nor the length of a sealed value
sets it apart.

What it says is new, and drawn as the list's own values are distributed (`ListSample`:
the rows written around it): its family name, given name, sex, age, town and 丁目,
whether a building follows, its phone's area code and exchange, and the prefix of its
insured number. A value is drawn by how often it comes up in the list, including how
often a value comes up only once (`one_more`): a detector that looks for values rare
within their list finds a canary as often as a real row. The insured number lies
between those of two rows written one after another when the list is in number order,
with the room around it a real row has. The phone number
is one the federation watches, from `phones`: for a template with a landline, under the
area code the list's landlines have in the canary's municipality (else the template's);
for a mobile or IP number, under a prefix drawn as the list's are. With no pool, a
generated number there, a landline in an exchange that starts with 0, which no real
exchange does (for demos and synthetic lists only).

Drawn from the caller's random source (the system's, for planted canaries): nobody can
regenerate them.
"""

import itertools
import random
import re
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

import jaconv

from yobikake.jp.phones import InvalidPhone, parse_phone
from yobikake.jp.wareki import fiscal_year_end
from yobikake.synth.areas import (
    PREFECTURE,
    Place,
    Town,
    address_in,
    all_towns,
    place_of,
    towns_of,
)
from yobikake.synth.names import given_names, surnames
from yobikake.synth.people import Person

MIN_AGE, MAX_AGE = 40, 74
SAMPLE_SIZE = 500  # the rows written last that a canary is drawn from
FRESH_TRIES = 50
NEAR = 50  # an insured number off its list's order lies this close to its template's
_HALF_WIDTH_KANA = re.compile("[\uff66-\uff9f]")
_FULL_WIDTH_DIGIT = re.compile("[０-９]")
_DASHED = re.compile(r"\d[-‐－ー―]\d")
# After a number: 一番町 and 忠節三丁目南町 are town names, not written-out block numbers.
_MARKERS = re.compile(r"[\d０-９] ?(?:丁目|番)")
_LAST_DIGITS = re.compile(r"\d+(?=\D*$)")


class ListSample:
    """The rows of a list written last, up to `size`: what a canary written among them
    draws from. Rows near each other in a list are alike as the list is (a household's
    members sit together, as do a town's people in a list in address order), so the
    canary is, and the counts it is drawn by keep households whole."""

    def __init__(self, size: int = SAMPLE_SIZE) -> None:
        self._rows: deque[Person] = deque(maxlen=size)

    @property
    def rows(self) -> list[Person]:
        return list(self._rows)

    def add(self, people: Sequence[Person]) -> None:
        self._rows.extend(people)


def one_more[T: Hashable](values: Sequence[T], rng: random.Random, fresh: Callable[[], T]) -> T:
    """A value for one more row, drawn as `values` (one per row) are distributed.

    Good–Turing's reasoning: a row picked at random has a value that m other rows share
    with probability (m+1)·N(m+1)/N, N(k) being the number of values k rows have. So a
    donor row is picked, and the new value is one that as many rows hold as share the
    donor's with it: a donor alone with its value gives a value no row has (`fresh`).
    The new row then shares its value with as many others as a real row would."""
    if not values:
        return fresh()
    counts = Counter(values)
    donor = rng.choice(values)
    wanted = counts[donor] - 1
    if wanted == 0:
        for _ in range(FRESH_TRIES):
            value = fresh()
            if value not in counts:
                return value
        return donor
    alike = [value for value, n in counts.items() if n == wanted]
    return rng.choice(alike) if alike else donor


def _separator(text: str) -> str:
    return "\u3000" if "\u3000" in text else (" " if " " in text else "")


@dataclass(frozen=True)
class _Number:
    """A phone number as libphonenumber writes it nationally: 058-012-3456 has the head
    058 (an area code, or a mobile or IP prefix) and the exchange 012."""

    text: str
    head: str
    exchange: str
    fixed: bool


_NATIONAL = re.compile(r"0\d{1,4}-\d{1,4}-\d{4}")
_NOT_FIXED = ("020", "050", "060", "070", "080", "090")


def _listed_number(text: str) -> _Number | None:
    """`_number` for a number as a list's rows hold it: checked and written nationally
    at import, so read without libphonenumber."""
    if _NATIONAL.fullmatch(text):
        head, exchange, _ = text.split("-")
        return _Number(text, head, exchange, not head.startswith(_NOT_FIXED))
    return _number(text)


def _number(text: str) -> _Number | None:
    try:
        phone = parse_phone(text)
    except InvalidPhone:
        return None
    parts = phone.national.split("-")
    if len(parts) != 3:
        return None
    return _Number(phone.national, parts[0], parts[1], phone.kind == "fixed")


@dataclass(frozen=True)
class _Row:
    """What a canary draws from a row of its list: the row, its family and given names
    with their kana (None where a name is not in two parts), its place and phone number."""

    person: Person
    family: tuple[str, str] | None
    given: tuple[str, str] | None
    place: Place | None
    number: _Number | None


@lru_cache(maxsize=2 * SAMPLE_SIZE)
def _row(person: Person) -> _Row:
    """A row read once, however many canaries draw from it."""
    kanji, kana = person.name_kanji.split(), person.name_kana.split()
    halves = len(kanji) == 2 and len(kana) == 2
    return _Row(
        person,
        (kanji[0], kana[0]) if halves else None,
        (kanji[1], kana[1]) if halves else None,
        place_of(person.address),
        _listed_number(person.phone) if person.phone else None,
    )


def _names(
    rows: Sequence[_Row], rng: random.Random
) -> tuple[str, tuple[str, str], tuple[str, str]]:
    """Sex, family name and given name (with their kana), as the list's are distributed."""
    sex = rng.choice(rows).person.sex
    family = one_more([r.family for r in rows if r.family], rng, lambda: surnames().pick(rng))
    given = one_more(
        [r.given for r in rows if r.given and r.person.sex == sex],
        rng,
        lambda: given_names(sex).pick(rng),
    )
    return sex, family, given


def _place(rows: Sequence[_Row], municipality: str, rng: random.Random) -> Place:
    """A town and 丁目, and a building or none, as the list's addresses are distributed;
    a town the list does not have comes from the municipality of one it has."""
    places = [r.place for r in rows if r.place]
    if not places:
        return Place(rng.choice(_towns(municipality)), None, rng.random() < 0.08)

    def fresh() -> tuple[Town, int | None]:
        town = rng.choice(towns_of(rng.choice(places).town.municipality))
        return town, (rng.randint(1, 5) if town.has_chome else None)

    town, chome = one_more([(p.town, p.chome) for p in places], rng, fresh)
    return Place(town, chome, rng.choice(places).building)


def _towns(municipality: str) -> tuple[Town, ...]:
    try:
        return towns_of(municipality)
    except KeyError:  # an insurer outside the bundled prefecture, or an association
        return all_towns()


@lru_cache(maxsize=8)
def _pool(phones: tuple[str, ...]) -> dict[tuple[bool, str], tuple[_Number, ...]]:
    """The watched numbers by kind (fixed or not) and head."""
    pool: dict[tuple[bool, str], list[_Number]] = {}
    for text in phones:
        number = _number(text)
        if number is not None:
            pool.setdefault((number.fixed, number.head), []).append(number)
    return {key: tuple(numbers) for key, numbers in pool.items()}


def _phone(
    template: str,
    town: Town,
    rows: Sequence[_Row],
    phones: Sequence[str],
    rng: random.Random,
    taken: Callable[[str], bool],
) -> str:
    """A number of the template's kind: a landline under the area code the list's
    landlines in the canary's municipality have, in an exchange drawn as theirs are; a
    mobile (or IP) number under a prefix drawn as the list's are."""
    shape = _number(template)
    if shape is None:
        return ""
    numbers = [r.number for r in rows if r.number]
    if shape.fixed:
        local = [
            r.number.head
            for r in rows
            if r.number
            and r.number.fixed
            and r.place
            and r.place.town.municipality == town.municipality
        ]
        head = rng.choice(local) if local else shape.head
    else:
        head = one_more([n.head for n in numbers if not n.fixed], rng, lambda: shape.head)
    pool = _pool(tuple(phones))
    if pool:
        return _watched(pool, shape.fixed, head, shape.head, numbers, rng, taken)
    if not shape.fixed:
        return _free(f"{head}{rng.randint(1000, 9999)}", 4, rng, taken)
    length = len(shape.exchange) if head == shape.head else 6 - len(head)

    def fresh() -> str:
        return "0" + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))

    exchange = one_more([n.exchange for n in numbers if n.fixed and n.head == head], rng, fresh)
    if not exchange.startswith("0"):  # a real exchange: generate nobody's number
        exchange = fresh()
    return _free(f"{head}{exchange}", 10 - len(head) - len(exchange), rng, taken)


def _free(start: str, digits: int, rng: random.Random, taken: Callable[[str], bool]) -> str:
    """`start` and `digits` random digits, written nationally: a number not `taken` (in
    a block nearly full, the last one drawn)."""
    drawn = ""
    for _ in range(FRESH_TRIES):
        number = _number(start + "".join(str(rng.randint(0, 9)) for _ in range(digits)))
        if number is not None:
            drawn = number.text
            if not taken(drawn):
                break
    return drawn


def _watched(
    pool: dict[tuple[bool, str], tuple[_Number, ...]],
    fixed: bool,
    head: str,
    template_head: str,
    numbers: Sequence[_Number],
    rng: random.Random,
    taken: Callable[[str], bool],
) -> str:
    """A watched number under `head` (else the template's head, else of its kind, else
    any), one not `taken` if there is one, rather in an exchange the list has often."""
    candidates = (
        pool.get((fixed, head))
        or pool.get((fixed, template_head))
        or tuple(n for (f, _), ns in pool.items() if f == fixed for n in ns)
        or tuple(n for ns in pool.values() for n in ns)
    )
    seen = Counter(n.exchange for n in numbers if n.head == head)
    # A weighted order without replacement (Efraimidis–Spirakis): the first free one.
    ordered = sorted(
        candidates, key=lambda n: rng.random() ** (1 / (seen[n.exchange] + 0.5)), reverse=True
    )
    return next((n.text for n in ordered if not taken(n.text)), ordered[0].text)


def in_number_order(people: Sequence[Person]) -> bool:
    """Whether `people` (rows written one after another) are in the order of their
    insured numbers, up or down, nearly all of them."""
    steps = Counter(
        (a > b) - (a < b)
        for a, b in itertools.pairwise(_serial(p.insured_number) for p in people)
        if a is not None and b is not None and a[0] == b[0]
    )
    total = sum(steps.values())
    return total > 0 and max(steps[1], steps[-1]) >= 0.9 * total


Serial = tuple[tuple[str, str, int], int]  # (symbol, suffix, width), value


def _serial(number: str) -> Serial | None:
    """(symbol, suffix, width) and the value of an insured number's last run of digits."""
    found = _LAST_DIGITS.search(number)
    if not found:
        return None
    digits = found.group()
    return (number[: found.start()], number[found.end() :], len(digits)), int(digits)


def _written(key: tuple[str, str, int], value: int) -> str:
    head, tail, width = key
    return f"{head}{value:0{width}d}{tail}"


def _insured(
    template: str,
    neighbours: Sequence[str],
    rng: random.Random,
    taken: Callable[[str], bool],
    *,
    at: int | None = None,
) -> str:
    """An insured number where the template has one. Given `neighbours` (rows written
    one after another, when the list is in number order; the template `at` its index
    among them, if it is), in a gap between two consecutive ones: one as wide as the
    room a real row has between the rows before and after it (the template's), split
    as that row's is — a gap drawn by its width alone would give a canary the room of
    one gap where a real row has two, and one drawn by the numbers it holds, the room of
    a list's sparse stretches. Else close to the template's, as close as numbers no one
    has allow."""
    serial = _serial(template)
    if serial is None:
        return ""
    keys = [_serial(number) for number in neighbours]
    gaps = [
        (a, b)
        for a, b in itertools.pairwise(keys)
        if a is not None and b is not None and a[0] == b[0] and abs(b[1] - a[1]) > 1
    ]
    rooms = {
        i: (abs(m[1] - a[1]), abs(b[1] - m[1]))
        for i, (a, m, b) in enumerate(zip(keys, keys[1:], keys[2:], strict=False), 1)
        if a is not None and m is not None and b is not None and a[0] == m[0] == b[0]
    }
    if gaps and rooms:
        room = rooms.get(at) if at is not None else None
        number = _in_room(gaps, room or rooms[rng.choice(list(rooms))], rng, taken)
        if number:
            return number
    key, own = serial
    top = 10 ** key[2]
    between = [(a[0], range(min(a[1], b[1]) + 1, max(a[1], b[1]))) for a, b in gaps]
    rounds = [between] + [
        [(key, range(max(own - near, 0), own)), (key, range(own + 1, min(own + near + 1, top)))]
        for near in (NEAR, NEAR * 10, NEAR * 100, top)
    ]
    number = template
    for candidates in rounds:
        candidates = [gap for gap in candidates if gap[1]]
        for _ in range(FRESH_TRIES if candidates else 0):
            gap_key, values = rng.choices(candidates, weights=[len(g) for _, g in candidates])[0]
            number = _written(gap_key, rng.choice(values))
            if not taken(number):
                return number
    return number


def _in_room(
    gaps: Sequence[tuple[Serial, Serial]],
    room: tuple[int, int],
    rng: random.Random,
    taken: Callable[[str], bool],
) -> str:
    """A number in the gap as wide as `room` (before, after) — or the nearest to it in
    width — at the same share of the way across; "" if every one tried is taken."""
    wanted = sum(room)
    nearest = sorted(gaps, key=lambda gap: (abs(abs(gap[1][1] - gap[0][1]) - wanted), rng.random()))
    for a, b in nearest[:FRESH_TRIES]:
        width = abs(b[1] - a[1])
        step = min(max(round(width * room[0] / wanted), 1), width - 1)
        number = _written(a[0], a[1] + step if b[1] > a[1] else a[1] - step)
        if not taken(number):
            return number
    return ""


def place_in_order(number: str, people: Sequence[Person]) -> int | None:
    """Where a row with insured number `number` goes among `people` (rows in number
    order, up or down): the index of the first row after it; None when it falls between
    no two of them."""
    serial = _serial(number)
    if serial is None:
        return None
    keys = [_serial(p.insured_number) for p in people]
    for at, (a, b) in enumerate(itertools.pairwise(keys), 1):
        if (
            a is not None
            and b is not None
            and a[0] == b[0] == serial[0]
            and min(a[1], b[1]) < serial[1] < max(a[1], b[1])
        ):
            return at
    return None


def number_after(people: Sequence[Person], rng: random.Random, taken: Callable[[str], bool]) -> str:
    """An insured number no one has (not `taken`) for one more row after the last of
    `people` (rows in number order, up or down): the last one's, a step on, the step
    drawn from those between them; "" when they give no step or every one drawn is taken."""
    serials = [s for p in people if (s := _serial(p.insured_number))]
    steps = [b[1] - a[1] for a, b in itertools.pairwise(serials) if a[0] == b[0] and a[1] != b[1]]
    if not steps:
        return ""
    up = sum(step > 0 for step in steps) * 2 >= len(steps)
    sizes = [abs(step) for step in steps if (step > 0) == up]
    (head, tail, width), last = serials[-1]
    for _ in range(FRESH_TRIES):
        value = last + rng.choice(sizes) * (1 if up else -1)
        number = f"{head}{value:0{width}d}{tail}"
        if 0 <= value < 10**width and not taken(number):
            return number
    return ""


def _nobody(_field: str, _value: str) -> bool:
    return False


def canary_like(
    template: Person,
    *,
    municipality: str,
    fiscal_year: int,
    phones: Sequence[str],
    rng: random.Random,
    sample: Sequence[Person] = (),
    neighbours: Sequence[Person] = (),
    in_use: Callable[[str, str], bool] = _nobody,
) -> Person:
    """A canary with `template`'s shape and values drawn as those of `sample` (rows of
    the same list; the template alone when empty) are distributed. `neighbours`: rows
    written one after another (the template among them, if it is written), when the
    list is in insured-number order: the canary's number falls between two of them
    (`place_in_order` says where).
    `in_use(field, value)` says whether a phone or insured number ("phone",
    "insured_number") is someone's beyond the sample, or another canary's."""
    rows = [_row(person) for person in (sample or [template])]
    sex, (family, family_kana), (given, given_kana) = _names(rows, rng)
    kana = f"{family_kana}{_separator(template.name_kana)}{given_kana}"
    if _HALF_WIDTH_KANA.search(template.name_kana):
        kana = jaconv.z2h(kana, kana=True, ascii=False, digit=False)
    year_end = fiscal_year_end(fiscal_year)
    age = min(max(rng.choice(rows).person.age_on(year_end), MIN_AGE), MAX_AGE)
    birth = None
    if template.birth_date is not None:
        earliest = date(year_end.year - age - 1, 4, 1)
        latest = date(year_end.year - age, 3, 31)
        birth = date.fromordinal(earliest.toordinal() + rng.randint(0, (latest - earliest).days))
    place = _place(rows, municipality, rng)
    address = address_in(place.town, rng, chome=place.chome, building=place.building)
    # 丁目・番・号 (or 番地) where the template writes them; else the hyphen form, which a
    # single block number (1626) shares with it.
    written_out = _DASHED.search(template.address) is None and _MARKERS.search(template.address)
    text = address.text(
        prefecture=template.address.startswith(PREFECTURE), dash="" if written_out else "-"
    )
    if _FULL_WIDTH_DIGIT.search(template.address):
        text = jaconv.h2z(text, kana=False, ascii=False, digit=True)
    postal = (
        address.postal_code if "-" in template.postal_code else address.postal_code.replace("-", "")
    )
    people = (*(r.person for r in rows), *neighbours, template)
    phones_known = {p.phone for p in people}
    numbers_known = {p.insured_number for p in people}
    return replace(
        template,
        name_kanji=f"{family}{_separator(template.name_kanji)}{given}",
        name_kana=kana,
        sex=sex,
        birth_date=birth,
        phone=_phone(
            template.phone,
            place.town,
            rows,
            phones,
            rng,
            lambda value: value in phones_known or in_use("phone", value),
        ),
        postal_code=postal if template.postal_code else "",
        address=text,
        insured_number=_insured(
            template.insured_number,
            [p.insured_number for p in neighbours],
            rng,
            lambda value: value in numbers_known or in_use("insured_number", value),
            at=next((i for i, p in enumerate(neighbours) if p is template), None),
        ),
        age=None if birth else age,
    )
