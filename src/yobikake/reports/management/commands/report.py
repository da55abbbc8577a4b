import csv
import io
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.loader import render_to_string
from django.utils import translation

from yobikake.reports.selectors import ListMatrix, list_matrix


def matrix_rows(matrix: ListMatrix) -> list[list[object]]:
    """The seed's table layout (insurer, a 1/0 per fiscal year, rows sent) with the rows
    accepted beside it, and per-year rows sent and accepted."""
    years = [fy.year for fy in matrix.fiscal_years]
    header: list[object] = ["insurer_number", "insurer_name"]
    header += [f"fy{y}" for y in years]
    header += [f"fy{y}_rows_submitted" for y in years] + [f"fy{y}_rows_accepted" for y in years]
    header += ["lists_submitted_total", "rows_accepted_total"]
    table: list[list[object]] = [header]
    for row in matrix.rows:
        table.append(
            [row.insurer.number, row.insurer.name]
            + [int(c.took_part) for c in row.cells]
            + [c.submitted for c in row.cells]
            + [c.accepted for c in row.cells]
            + [row.submitted, row.accepted]
        )
    totals = matrix.column_totals()
    table.append(
        ["", "total"]
        + list(matrix.insurers_per_year())
        + [c.submitted for c in totals]
        + [c.accepted for c in totals]
        + [matrix.submitted, matrix.accepted]
    )
    return table


class Command(BaseCommand):
    help = "Reports across insurers."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        matrix = sub.add_parser(
            "matrix", help="Insurers × fiscal years: contracted, rows sent, rows accepted."
        )
        matrix.add_argument("--format", choices=["csv", "xlsx", "html"], default="csv")
        matrix.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        matrix = list_matrix(None)
        fmt, out = options["format"], options["out"]
        if fmt == "xlsx":
            if out is None:
                raise CommandError("--format xlsx needs --out FILE")
            self._xlsx(matrix, out)
            return
        if fmt == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(matrix_rows(matrix))
            text = buffer.getvalue()
        else:
            with translation.override("ja"):
                text = render_to_string("reports/matrix.html", {"matrix": matrix})
        if out is None:
            self.stdout.write(text, ending="")
        else:
            out.write_text(text, encoding="utf-8")

    def _xlsx(self, matrix: ListMatrix, out: Path) -> None:
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("participation")
        for row in matrix_rows(matrix):
            sheet.append(row)
        book.save(out)
