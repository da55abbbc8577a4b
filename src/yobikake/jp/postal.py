"""Postal codes (郵便番号): seven digits, written 500-8070."""

import re
import unicodedata


class InvalidPostalCode(ValueError):
    """The text is not a postal code. `reason` is one of: empty, format."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_SPACES = re.compile(r"\s+")
# NFKC has turned ５００－８０７０ into 500-8070 and the circled mark 〶 into 〒; the
# separator may still be another dash, or ー from a half-width ｰ.
_POSTAL_CODE = re.compile("〒?(\\d{3})[-\u2010-\u2015\u2212\u30fc]?(\\d{4})", re.ASCII)


def parse_postal_code(text: str) -> str:
    """The seven digits of 〒500-8070, ５００－８０７０ or 5008070."""
    folded = _SPACES.sub("", unicodedata.normalize("NFKC", text))
    if not folded:
        raise InvalidPostalCode("empty")
    match = _POSTAL_CODE.fullmatch(folded)
    if match is None:
        raise InvalidPostalCode("format")
    return match[1] + match[2]


def format_postal_code(code: str) -> str:
    """500-8070 for the code in any form parse_postal_code accepts."""
    digits = parse_postal_code(code)
    return f"{digits[:3]}-{digits[3:]}"
