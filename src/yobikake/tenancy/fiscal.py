"""Fiscal years as the UI shows them: 令和3年度 beside FY2021."""

from dataclasses import dataclass
from datetime import date

from yobikake.jp import wareki


@dataclass(frozen=True, order=True)
class FiscalYear:
    year: int

    @property
    def wareki(self) -> str:
        return wareki.fiscal_year_label(self.year)

    @property
    def short(self) -> str:
        return f"FY{self.year}"

    @property
    def starts(self) -> date:
        return wareki.fiscal_year_start(self.year)

    @property
    def ends(self) -> date:
        return wareki.fiscal_year_end(self.year)

    def __str__(self) -> str:
        return f"{self.wareki}（{self.short}）"

    @classmethod
    def of(cls, day: date) -> "FiscalYear":
        return cls(wareki.fiscal_year_of(day))
