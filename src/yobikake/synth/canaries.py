"""Canary residents: synthetic people who look like the rest of an insurer's list.

Each canary is modelled on a real row of the same list (its template): the same fields
present or missing (a list that gives only ages gets a canary with only an age; no
insured number where the list has none), written the same way (spacing in names,
half-width kana, hyphens in phones and postal codes, the prefecture and 丁目 or hyphen
form in addresses, the insured number's symbol and length) — so neither a column left
empty nor the length of a sealed value sets it apart. What it says is new: a name
weighted by real frequency with its reading, a street address in one of the insurer's
own towns, an age in range, and a phone number from the pool the federation watches.
Drawn from the system's random source: nobody can regenerate them.
"""

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

import jaconv

from yobikake.jp.wareki import fiscal_year_end
from yobikake.synth.areas import PREFECTURE, Town, all_towns, random_address, towns_of
from yobikake.synth.names import given_names, surnames
from yobikake.synth.people import Person

MIN_AGE, MAX_AGE = 40, 74
_HALF_WIDTH_KANA = re.compile("[\uff66-\uff9f]")
_FULL_WIDTH_DIGIT = re.compile("[０-９]")
_DASHED = re.compile(r"\d[-‐－ー―]\d")
# After a number: 一番町 and 忠節三丁目南町 are town names, not written-out block numbers.
_MARKERS = re.compile(r"[\d０-９] ?(?:丁目|番)")
_LAST_DIGITS = re.compile(r"\d+(?=\D*$)")


def _towns(municipality: str) -> tuple[Town, ...]:
    try:
        return towns_of(municipality)
    except KeyError:  # an insurer outside the bundled prefecture, or an association
        return all_towns()


def _separator(text: str) -> str:
    return "\u3000" if "\u3000" in text else (" " if " " in text else "")


def _like_phone(template: str, number: str) -> str:
    if not template:
        return ""
    digits = number.replace("-", "")
    return number if "-" in template else digits


def _like_postal(template: str, code: str) -> str:
    if not template:
        return ""
    return code if "-" in template else code.replace("-", "")


def _like_insured(template: str, rng: random.Random) -> str:
    """The template's insured number with its last run of digits drawn afresh."""
    if not template:
        return ""
    return _LAST_DIGITS.sub(
        lambda m: "".join(str(rng.randint(0, 9)) for _ in m.group()), template, count=1
    )


def canary_like(
    template: Person,
    *,
    municipality: str,
    fiscal_year: int,
    phones: Sequence[str],
    rng: random.Random,
) -> Person:
    """A canary with `template`'s shape (see the module docstring)."""
    sex = rng.choice("12")
    surname, surname_kana = surnames().pick(rng)
    given, given_kana = given_names(sex).pick(rng)
    kana = f"{surname_kana}{_separator(template.name_kana)}{given_kana}"
    if _HALF_WIDTH_KANA.search(template.name_kana):
        kana = jaconv.z2h(kana, kana=True, ascii=False, digit=False)
    age = rng.randint(MIN_AGE, MAX_AGE)
    birth = None
    if template.birth_date is not None:
        earliest = date(fiscal_year_end(fiscal_year).year - age - 1, 4, 1)
        birth = date.fromordinal(earliest.toordinal() + rng.randint(0, 364))
    address = random_address(_towns(municipality), rng)
    # 丁目・番・号 (or 番地) where the template writes them; else the hyphen form, which a
    # single block number (1626) shares with it.
    written_out = _DASHED.search(template.address) is None and _MARKERS.search(template.address)
    text = address.text(
        prefecture=template.address.startswith(PREFECTURE), dash="" if written_out else "-"
    )
    if _FULL_WIDTH_DIGIT.search(template.address):
        text = jaconv.h2z(text, kana=False, ascii=False, digit=True)
    return replace(
        template,
        name_kanji=f"{surname}{_separator(template.name_kanji)}{given}",
        name_kana=kana,
        sex=sex,
        birth_date=birth,
        phone=_like_phone(template.phone, rng.choice(phones)),
        postal_code=_like_postal(template.postal_code, address.postal_code),
        address=text,
        insured_number=_like_insured(template.insured_number, rng),
        age=None if birth else age,
    )
