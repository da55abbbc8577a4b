"""Synthetic phone directories for the directory import (tests, the demo): rows of name,
kana, address and number made from synthetic people, so that some of a list's people
without a phone are found, some are not, and some cannot be told apart. They describe
no one; their numbers are synthetic (058-0xx-xxxx, see people.py) and never to be dialled.
"""

import csv
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from yobikake.synth.people import Person, synthetic_people

HEADERS = ("氏名", "カナ氏名", "住所", "電話番号")


def _number(rng: random.Random) -> str:
    return f"058-0{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}"


def namesake(person: Person, *, seed: int) -> Person:
    """Another person of the same name at the same address (a parent and child named
    alike, say), without a phone: a directory row for the one fits the other too."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by design
    birth = person.birth_date
    if birth is None:
        raise ValueError("a namesake is made from a person with a birth date")
    return replace(
        person,
        birth_date=birth.replace(year=birth.year + rng.randint(1, 3)),
        phone="",
        insured_number=f"{person.insured_number[:4]}{rng.randint(0, 9_999_999):07d}",
    )


def synthetic_directory(
    people: Sequence[Person],
    *,
    seed: int,
    found: int,
    twice: int = 0,
    unrelated: int = 3,
) -> list[Person]:
    """Directory entries (as people with a number) for the first `found` of `people`
    who have no phone — one number each, except the last `twice` of those, who are
    listed again with another number — and `unrelated` people of another town, who are
    on no list."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by design
    without = [p for p in people if not p.phone][:found]
    if len(without) < found:
        raise ValueError(f"only {len(without)} of the people have no phone")
    entries = [replace(p, phone=_number(rng)) for p in without]
    entries += [replace(p, phone=_number(rng)) for p in without[found - twice :]]
    others = synthetic_people(unrelated, seed=seed, fiscal_year=2022, city="岐阜県架空村")
    entries += [replace(p, phone=p.phone or _number(rng)) for p in others]
    return entries


def write_directory(path: Path, entries: Sequence[Person], *, encoding: str = "cp932") -> None:
    """A directory CSV as a vendor sends one: 氏名, カナ氏名, 住所, 電話番号."""
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADERS)
        for p in entries:
            writer.writerow((p.name_kanji, p.name_kana, p.address, p.phone))
