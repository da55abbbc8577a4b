"""保険者番号 (insurer numbers) as MHLW's numbering rules define them.

Municipal NHI and NHI associations have six digits: prefecture (2) + insurer (3) + check
digit. Other insurers have eight: a law code (法別番号, 2) in front of the same layout.
The check digit is MHLW's variant of Luhn: weights 2, 1, 2, … from the rightmost body
digit, two-digit products counted as the sum of their digits, check = (10 - total % 10) % 10.
"""

import unicodedata
from dataclasses import dataclass

from yobikake.jp.prefectures import PREFECTURES


class InvalidInsurerNumber(ValueError):
    """The text is not a valid insurer number. `reason` is one of: not_digits, length,
    prefecture, check_digit (the UI translates it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InsurerNumber:
    digits: str

    @property
    def law_code(self) -> str | None:
        return self.digits[:2] if len(self.digits) == 8 else None

    @property
    def prefecture_code(self) -> str:
        return self.digits[-6:-4]

    @property
    def prefecture_name(self) -> str:
        return PREFECTURES[self.prefecture_code]

    def __str__(self) -> str:
        return self.digits


def check_digit(body: str) -> int:
    """The check digit for the digits before it (5 for a 6-digit number, 7 for 8)."""
    total = 0
    for position, char in enumerate(reversed(body)):
        product = int(char) * (2 if position % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def parse_insurer_number(text: str) -> InsurerNumber:
    """Validate an insurer number; full-width digits and surrounding spaces are accepted."""
    digits = unicodedata.normalize("NFKC", text).strip()
    if not digits.isascii() or not digits.isdigit():
        raise InvalidInsurerNumber("not_digits")
    if len(digits) not in (6, 8):
        raise InvalidInsurerNumber("length")
    number = InsurerNumber(digits)
    if number.prefecture_code not in PREFECTURES:
        raise InvalidInsurerNumber("prefecture")
    if check_digit(digits[:-1]) != int(digits[-1]):
        raise InvalidInsurerNumber("check_digit")
    return number


def with_check_digit(body: str) -> str:
    """Append the check digit to a 5- or 7-digit body."""
    return body + str(check_digit(body))
