"""Matching keys: the forms of a value that blind indexes are computed over, so that the
same person typed two ways by two systems gives the same index.

These are keys, never for display: display keeps what the insurer sent, tidied at most by
display_name and display_kana. Each key is "" when nothing usable is left, and a blind
index is never computed over "" (it would be the same for everyone).
"""

import re
import unicodedata
from datetime import date

import jaconv

from yobikake.jp import addresses
from yobikake.jp.insured_numbers import InvalidInsuredNumber, parse_insured_number
from yobikake.jp.kanji import drop_variation_selectors, fold_variants

_SPACES = re.compile(r"\s+")
# NFKC turns a half-width ｰ into the long vowel mark ー; between digits it was a hyphen.
_LONG_VOWEL_BETWEEN_DIGITS = re.compile(r"(?<=\d)ー(?=\d)")


def fold(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII, half-width kana to full), variation
    selectors dropped, hyphens between digits kept as hyphens, outer whitespace trimmed."""
    folded = drop_variation_selectors(unicodedata.normalize("NFKC", text))
    return _LONG_VOWEL_BETWEEN_DIGITS.sub("-", folded).strip()


def _no_spaces(text: str) -> str:
    return _SPACES.sub("", text)


def kana_key(kana: str) -> str:
    """A kana name as katakana without spaces: ﾔﾏﾀﾞ ﾀﾛｳ, やまだ　たろう → ヤマダタロウ."""
    return _no_spaces(jaconv.hira2kata(fold(kana)))


def name_key(name: str) -> str:
    """A kanji name without spaces, its variant kanji folded: 髙﨑 太郎 → 高崎太郎."""
    return fold_variants(_no_spaces(fold(name)))


def phone_key(phone: str) -> str:
    """The digits of a Japanese phone number (10 or 11, starting with 0), else ""."""
    digits = "".join(c for c in fold(phone) if c.isdigit())
    if digits.startswith("81") and len(digits) in (11, 12):  # +81 90-…
        digits = "0" + digits[2:]
    return digits if digits.startswith("0") and len(digits) in (10, 11) else ""


def address_key(address: str) -> str:
    """The address up to its block number, prefecture filled in where the city tells it:
    岐阜市本町一丁目2番3号 メゾン本町101 → 岐阜県岐阜市本町1-2-3."""
    return addresses.address_key(address)


def insured_number_key(number: str) -> str:
    """An insured number (記号・番号) without its hyphen, "" if it is not one."""
    try:
        return parse_insured_number(number).replace("-", "")
    except InvalidInsuredNumber:
        return ""


def birth_key(birth: date) -> str:
    return birth.isoformat()


def display_name(text: str) -> str:
    """A kanji name for display: NFKC, one space between surname and given name."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def display_kana(text: str) -> str:
    """A kana name for display in full-width katakana, one space between its parts:
    ﾔﾏﾀﾞ　ﾀﾛｳ and やまだ たろう → ヤマダ タロウ."""
    return " ".join(jaconv.hira2kata(jaconv.h2z(text, kana=True)).split())
