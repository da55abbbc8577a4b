"""Figures across insurers: the participation matrix with the rows each list held."""

from dataclasses import dataclass

from django.db.models import Sum

from yobikake.accounts.models import User
from yobikake.intake.models import TargetList
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer
from yobikake.tenancy.selectors import participation_matrix, participation_matrix_of


@dataclass(frozen=True)
class Cell:
    took_part: bool
    submitted: int  # data rows in the files sent (what the seed's table counts)
    accepted: int  # rows stored (counts survive shredding)


@dataclass(frozen=True)
class MatrixRow:
    insurer: Insurer
    cells: tuple[Cell, ...]

    @property
    def years(self) -> int:
        return sum(c.took_part for c in self.cells)

    @property
    def submitted(self) -> int:
        return sum(c.submitted for c in self.cells)

    @property
    def accepted(self) -> int:
        return sum(c.accepted for c in self.cells)


@dataclass(frozen=True)
class ListMatrix:
    fiscal_years: tuple[FiscalYear, ...]
    rows: tuple[MatrixRow, ...]

    def _columns(self) -> list[tuple[Cell, ...]]:
        return list(zip(*(r.cells for r in self.rows), strict=True))

    def column_totals(self) -> list[Cell]:
        return [
            Cell(
                took_part=False,
                submitted=sum(c.submitted for c in column),
                accepted=sum(c.accepted for c in column),
            )
            for column in self._columns()
        ]

    def insurers_per_year(self) -> list[int]:
        return [sum(c.took_part for c in column) for column in self._columns()]

    @property
    def submitted(self) -> int:
        return sum(r.submitted for r in self.rows)

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.rows)


def list_matrix(actor: User | None) -> ListMatrix:
    """Insurers × fiscal years the actor may see (all of them for the command line):
    contracted or not, rows sent, rows accepted (all lists of that insurer and year,
    shredded ones included)."""
    base = (
        participation_matrix(actor)
        if actor is not None
        else participation_matrix_of(Insurer.objects.all())
    )
    sums = {
        (row["insurer_id"], row["fiscal_year"]): (row["submitted"] or 0, row["accepted"] or 0)
        for row in TargetList.objects.filter(insurer__in=[r.insurer for r in base.rows])
        .values("insurer_id", "fiscal_year")
        .annotate(submitted=Sum("rows_submitted"), accepted=Sum("row_count"))
    }
    rows = tuple(
        MatrixRow(
            row.insurer,
            tuple(
                Cell(took_part, *sums.get((row.insurer.pk, fy.year), (0, 0)))
                for fy, took_part in zip(base.fiscal_years, row.years, strict=True)
            ),
        )
        for row in base.rows
    )
    return ListMatrix(base.fiscal_years, rows)
