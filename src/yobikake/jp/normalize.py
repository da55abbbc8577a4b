"""Matching keys: the forms of a value that blind indexes are computed over, so that the
same person typed two ways by two systems gives the same index.

These are keys, never for display: display keeps what the insurer sent. Each returns ""
when nothing usable is left, and a blind index is never computed over "" (it would be
the same for everyone). The intake issue extends these (variant kanji, wareki dates,
addresses checked against Japan Post data); the keys' shape stays.
"""

import re
import unicodedata
from datetime import date

import jaconv

_SPACES = re.compile(r"\s+")
# Dashes that municipal systems and people type between digits.
_DASHES = re.compile("[\u2010-\u2015\u2212\u30fc\uff0d\uff70-]")
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def fold(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII, half-width kana to full), variation
    selectors dropped, outer whitespace trimmed."""
    return _VARIATION_SELECTORS.sub("", unicodedata.normalize("NFKC", text)).strip()


def _no_spaces(text: str) -> str:
    return _SPACES.sub("", text)


def kana_key(kana: str) -> str:
    """A kana name as katakana without spaces: ﾔﾏﾀﾞ ﾀﾛｳ, やまだ　たろう → ヤマダタロウ."""
    return _no_spaces(jaconv.hira2kata(fold(kana)))


def name_key(name: str) -> str:
    """A kanji name without spaces (full- or half-width)."""
    return _no_spaces(fold(name))


def phone_key(phone: str) -> str:
    """The digits of a Japanese phone number (10 or 11, starting with 0), else ""."""
    digits = "".join(c for c in fold(phone) if c.isdigit())
    if digits.startswith("81") and len(digits) in (11, 12):  # +81 90-…
        digits = "0" + digits[2:]
    return digits if digits.startswith("0") and len(digits) in (10, 11) else ""


def address_key(address: str) -> str:
    """An address folded, without spaces, its dashes one ASCII hyphen."""
    return _DASHES.sub("-", _no_spaces(fold(address)))


def insured_number_key(number: str) -> str:
    """An insured number (記号・番号) without spaces and dashes."""
    return _DASHES.sub("", _no_spaces(fold(number)))


def birth_key(birth: date) -> str:
    return birth.isoformat()
