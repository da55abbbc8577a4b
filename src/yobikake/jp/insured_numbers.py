"""被保険者記号・番号: the symbol and number on an insured person's card, kept as one
string `記号-番号` (岐01-0001234). Not to be confused with insurer numbers (保険者番号)."""

import re
import unicodedata


class InvalidInsuredNumber(ValueError):
    """The text is not an insured number. `reason` is one of: empty, format, length."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


MAX_LENGTH = 20
# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@")
_SPACES = re.compile(r"\s+")
_SYMBOL_LABEL = re.compile(r"^(?:記号|番号):?")
_NUMBER_LABEL = re.compile("[-・\u2010-\u2015\u2212]*番号:?")
# The dashes and the middle dot typed between symbol and number; ー only before a digit,
# since it is a long vowel mark inside a kana symbol.
_SEPARATOR = re.compile("[・\u2010-\u2015\u2212]|\u30fc(?=[0-9])")
# Digits, ASCII letters, hiragana, katakana (with ー) and kanji (with 々).
_PART = (
    "[0-9A-Za-z\u3041-\u3096\u30a1-\u30fa\u30fc"
    "\u3005\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]+"
)
_SHAPE = re.compile(f"{_PART}(?:-{_PART})?")


def parse_insured_number(text: str) -> str:
    """「岐01-0001234」 for 岐０１－０００１２３４, 「12-345678」 for 記号12 番号345678:
    digits, ASCII letters, kana and kanji, with at most one hyphen, between symbol and
    number."""
    folded = unicodedata.normalize("NFKC", text).strip()
    if not folded:
        raise InvalidInsuredNumber("empty")
    if folded.startswith(_FORMULA_PREFIXES):
        raise InvalidInsuredNumber("format")
    compact = _SYMBOL_LABEL.sub("", _SPACES.sub("", folded))
    number = _SEPARATOR.sub("-", _NUMBER_LABEL.sub("-", compact))
    if not _SHAPE.fullmatch(number):
        raise InvalidInsuredNumber("format")
    if len(number) > MAX_LENGTH:
        raise InvalidInsuredNumber("length")
    return number
