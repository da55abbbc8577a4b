import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.loader import render_to_string
from django.utils import translation

from yobikake.calling.models import Campaign
from yobikake.reports.effect import ROW_HEADER, effect_dict, effect_rows
from yobikake.reports.files import csv_text, xlsx_bytes
from yobikake.reports.selectors import (
    ListMatrix,
    campaign_effect,
    has_results,
    list_matrix,
    synthetic_results,
)


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
        effect = sub.add_parser(
            "effect",
            help="Uptake called vs held out per campaign: difference, 95%% CI, p-value, "
            "by sex and age band (small cells suppressed), reached split (biased).",
        )
        effect.add_argument("--campaign", type=int, help="one campaign (default: all started)")
        effect.add_argument("--format", choices=["csv", "xlsx", "json"], default="csv")
        effect.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "effect":
            self._effect(options["campaign"], options["format"], options["out"])
            return
        matrix = list_matrix(None)
        fmt, out = options["format"], options["out"]
        if fmt == "xlsx":
            self._xlsx(matrix_rows(matrix), out, "participation")
            return
        if fmt == "csv":
            text = csv_text(matrix_rows(matrix))
        else:
            with translation.override("ja"):
                text = render_to_string("reports/matrix.html", {"matrix": matrix})
        self._write(text, out)

    def _effect(self, campaign_id: int | None, fmt: str, out: Path | None) -> None:
        """Every started campaign (or the one asked for): one block of rows each in
        CSV/XLSX, led by the campaign's id, insurer number and fiscal year."""
        campaigns = Campaign.objects.exclude(state=Campaign.State.DRAFT).select_related("insurer")
        if campaign_id is not None:
            campaigns = campaigns.filter(pk=campaign_id)
            if not campaigns:
                raise CommandError(f"No started campaign {campaign_id}.")
        measured = [(c, campaign_effect(c)) for c in campaigns.order_by("pk")]
        if fmt == "json":
            text = json.dumps(
                [
                    {
                        "id": c.pk,
                        "insurer_number": c.insurer.number,
                        "fiscal_year": c.fiscal_year,
                        "state": c.state,
                        "has_results": has_results(c),
                        "synthetic_results": synthetic_results(c),
                        **effect_dict(e),
                    }
                    for c, e in measured
                ],
                ensure_ascii=False,
                indent=2,
            )
            self._write(text + "\n", out)
            return
        table: list[list[object]] = [["campaign_id", "insurer_number", "fiscal_year", *ROW_HEADER]]
        for c, e in measured:
            table += [[c.pk, c.insurer.number, c.fiscal_year, *row] for row in effect_rows(e)[1:]]
        if fmt == "xlsx":
            self._xlsx(table, out, "effect")
        else:
            self._write(csv_text(table), out)

    def _write(self, text: str, out: Path | None) -> None:
        if out is None:
            self.stdout.write(text, ending="")
        else:
            out.write_text(text, encoding="utf-8")

    def _xlsx(self, table: list[list[object]], out: Path | None, sheet_name: str) -> None:
        if out is None:
            raise CommandError("--format xlsx needs --out FILE")
        out.write_bytes(xlsx_bytes(table, sheet_name))
