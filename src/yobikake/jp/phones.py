"""Japanese phone numbers, validated against libphonenumber's numbering plan."""

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType


class InvalidPhone(ValueError):
    """The text is not a Japanese phone number. `reason` is one of: empty, format (not
    digits and separators), impossible (no such number in the numbering plan)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Phone:
    digits: str  # national, with the leading 0: "0582142966"
    national: str  # "058-214-2966"
    kind: str  # fixed, mobile, ip, toll_free or other

    def __str__(self) -> str:
        return self.national


# After NFKC: spaces, parentheses (058(214)2966), dots and the dashes people type — the
# hyphen-minus, ‐ ‒ – — ― −, and ー, which a half-width ｰ becomes.
_SEPARATORS = re.compile("[\\s().\\-\u2010-\u2015\u2212\u30fc]")
_KINDS = {
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.VOIP: "ip",
    PhoneNumberType.TOLL_FREE: "toll_free",
}


def parse_phone(text: str) -> Phone:
    """A Japanese number written nationally (058-214-2966, ０５８（２１４）２９６６) or
    internationally (+81 58-214-2966, +81 (0)58-214-2966)."""
    folded = unicodedata.normalize("NFKC", text).strip()
    compact = _SEPARATORS.sub("", folded)
    if not compact:
        raise InvalidPhone("empty")
    if compact.startswith("+"):
        if not _is_digits(compact[1:]):
            raise InvalidPhone("format")
        if not compact.startswith("+81"):
            raise InvalidPhone("impossible")
        national = compact[3:] if compact.startswith("+810") else "0" + compact[3:]
    elif not _is_digits(compact):
        raise InvalidPhone("format")
    elif not compact.startswith("0") and compact == folded:
        # A bare number without its leading 0: a spreadsheet stored the number as numeric.
        national = "0" + compact
    else:
        national = compact
    return _phone(national)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


# Rows of one household sit together in a list, so a small cache catches the repeats.
@lru_cache(maxsize=4096)
def _phone(national: str) -> Phone:
    # A second 0 would be the international prefix, and int() below would drop it.
    if len(national) < 2 or not national.startswith("0") or national[1] == "0":
        raise InvalidPhone("impossible")
    # Building the number directly skips phonenumbers.parse, which costs as much again.
    number = phonenumbers.PhoneNumber(country_code=81, national_number=int(national[1:]))
    # For a country code with one region, is_valid_number is number_type != UNKNOWN;
    # asking for the type alone matches the numbering plan once instead of twice.
    number_type = phonenumbers.number_type(number)
    if number_type == PhoneNumberType.UNKNOWN:
        raise InvalidPhone("impossible")
    return Phone(
        digits=national,
        national=phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        kind=_KINDS.get(number_type, "other"),
    )
