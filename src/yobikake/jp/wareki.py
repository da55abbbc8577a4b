"""Japanese eras (和暦) and fiscal years (年度, April to March)."""

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Era:
    name: str
    letter: str
    starts: date
    # The last day; None for the era in force.
    ends: date | None = None

    def covers(self, day: date) -> bool:
        return self.starts <= day and (self.ends is None or day <= self.ends)


# Newest first, so the first era that has started on a date is the one in force.
ERAS: tuple[Era, ...] = (
    Era("令和", "R", date(2019, 5, 1)),
    Era("平成", "H", date(1989, 1, 8), ends=date(2019, 4, 30)),
    Era("昭和", "S", date(1926, 12, 25), ends=date(1989, 1, 7)),
    Era("大正", "T", date(1912, 7, 30), ends=date(1926, 12, 24)),
    Era("明治", "M", date(1868, 10, 23), ends=date(1912, 7, 29)),
)


def era_of(day: date) -> tuple[Era, int]:
    """The era in force on a day and the year within it (1 for the first year)."""
    for era in ERAS:
        if day >= era.starts:
            return era, day.year - era.starts.year + 1
    raise ValueError(f"{day} is before the Meiji era")


def era_year_text(era: Era, year: int) -> str:
    """「令和3年」; the first year of an era is written 元年."""
    return f"{era.name}{'元' if year == 1 else year}年"


def wareki_date(day: date) -> str:
    """「昭和50年1月2日」: a date as the insurer's staff read it in 和暦."""
    era, year = era_of(day)
    return f"{era_year_text(era, year)}{day.month}月{day.day}日"


def fiscal_year_of(day: date) -> int:
    """The fiscal year (named by the calendar year it starts in) a day falls in."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_start(fiscal_year: int) -> date:
    return date(fiscal_year, 4, 1)


def fiscal_year_end(fiscal_year: int) -> date:
    return date(fiscal_year + 1, 3, 31)


def fiscal_year_label(fiscal_year: int) -> str:
    """「令和3年度」. A fiscal year takes the era in force at the end of its calendar year,
    the usage that names FY2019 令和元年度 although its first month was 平成31年."""
    era, year = era_of(date(fiscal_year, 12, 31))
    return era_year_text(era, year) + "度"
