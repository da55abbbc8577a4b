"""Canary residents: synthetic people who look like the rest of an insurer's list — a
name weighted by real frequency with its reading, a street address in one of the
insurer's own towns, an age in range — and whose phone number comes from the pool the
federation monitors. Drawn from the system's random source: nobody can regenerate them.
"""

import random
from collections.abc import Sequence
from datetime import date

from yobikake.jp.wareki import fiscal_year_end
from yobikake.synth.areas import all_towns, random_address, towns_of
from yobikake.synth.names import given_names, surnames
from yobikake.synth.people import Person

MIN_AGE, MAX_AGE = 40, 74


def _towns(municipality: str) -> tuple[object, ...]:
    try:
        return towns_of(municipality)
    except KeyError:  # an insurer outside the bundled prefecture, or an association
        return all_towns()


def canary_people(
    *, municipality: str, fiscal_year: int, count: int, phones: Sequence[str]
) -> list[Person]:
    """`count` plausible residents of `municipality` for the list of `fiscal_year`."""
    rng = random.SystemRandom()
    year_end = fiscal_year_end(fiscal_year)
    towns = _towns(municipality)
    people = []
    for _ in range(count):
        sex = rng.choice("12")
        surname, surname_kana = surnames().pick(rng)
        given, given_kana = given_names(sex).pick(rng)
        age = rng.randint(MIN_AGE, MAX_AGE)
        earliest = date(year_end.year - age - 1, 4, 1)
        birth = date.fromordinal(earliest.toordinal() + rng.randint(0, 364))
        address = random_address(towns, rng)  # type: ignore[arg-type]
        people.append(
            Person(
                name_kanji=f"{surname} {given}",
                name_kana=f"{surname_kana} {given_kana}",
                sex=sex,
                birth_date=birth,
                phone=rng.choice(phones),
                postal_code=address.postal_code,
                address=address.text(),
                insured_number=f"{rng.randint(1, 99):02d}-{rng.randint(10_000, 2_500_000):07d}",
            )
        )
    return people
