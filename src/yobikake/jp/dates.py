"""Dates as municipal and medical systems write them: Gregorian, 和暦 (昭和45年3月2日,
S45.3.2) and the era-coded seven digits of insurance systems (3450302)."""

import re
import unicodedata
from datetime import date

from yobikake.jp.wareki import ERAS, Era


class InvalidDate(ValueError):
    """The text is not a date. `reason` is one of: empty, format, impossible (no such day,
    such as 2月30日), era (a 和暦 date outside its era, such as 昭和65年)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The era codes of レセプト and insurance-card systems: 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和.
_ERA_BY_CODE = {str(code): era for code, era in enumerate(reversed(ERAS), start=1)}
# 昭和, its first character 昭, and its letter S all name the era.
_ERA_BY_TOKEN = {token: era for era in ERAS for token in (era.name, era.name[0], era.letter)}
_SPACES = re.compile(r"\s+")
_GREGORIAN = re.compile(r"(\d{4})[年./-](\d{1,2})[月./-](\d{1,2})日?")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ERA_CODED = re.compile(r"([1-5])(\d{2})(\d{2})(\d{2})")
_WAREKI = re.compile(
    "(" + "|".join(sorted(_ERA_BY_TOKEN, key=len, reverse=True)) + ")"
    r"(元|\d{1,2})[年./-](\d{1,2})[月./-](\d{1,2})日?"
)


def parse_date(text: str) -> date:
    """A date in any of the forms the module docstring names; full-width digits, spaces
    (systems pad 「昭和45年 3月 2日」) and lower-case era letters are accepted."""
    folded = _SPACES.sub("", unicodedata.normalize("NFKC", text)).upper()
    if not folded:
        raise InvalidDate("empty")
    if match := _GREGORIAN.fullmatch(folded) or _COMPACT.fullmatch(folded):
        return _day(*map(int, match.groups()))
    if match := _WAREKI.fullmatch(folded):
        token, year, month, day = match.groups()
        era_year = 1 if year == "元" else int(year)
        return _wareki_day(_ERA_BY_TOKEN[token], era_year, int(month), int(day))
    if match := _ERA_CODED.fullmatch(folded):
        code, year, month, day = match.groups()
        return _wareki_day(_ERA_BY_CODE[code], int(year), int(month), int(day))
    raise InvalidDate("format")


def _day(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate("impossible") from None


def _wareki_day(era: Era, era_year: int, month: int, day: int) -> date:
    if era_year < 1:
        raise InvalidDate("era")
    result = _day(era.starts.year + era_year - 1, month, day)
    if not era.covers(result):
        raise InvalidDate("era")
    return result


def age_on(birth: date, day: date) -> int:
    """Completed years on `day`; someone born on 29 February ages on 1 March in common
    years."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def slash_date(day: date) -> str:
    """「1975/01/02」: a Gregorian date as Japanese forms and spreadsheets write it."""
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"
