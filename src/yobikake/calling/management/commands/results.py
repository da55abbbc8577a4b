import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yobikake.accounts.errors import AccountError
from yobikake.calling.results import record_checkup_results
from yobikake.jp.checkup_cda import insurer_number_key
from yobikake.tenancy.models import Insurer


class Command(BaseCommand):
    help = "Checkup results: who of an insurer's call targets took the checkup, and when."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser(
            "import",
            help="Match an insurer's checkup results file (CSV/TSV/XLSX with the day taken, "
            "or the national standard format: one CDA document or a ZIP submission) against "
            "its campaigns, as the results upload page does.",
        )
        imp.add_argument("file", type=Path)
        imp.add_argument(
            "--insurer",
            metavar="NUMBER",
            required=True,
            help="the insurer number, as stored or in the standard's eight-digit form",
        )
        imp.add_argument("--json", action="store_true", help="the counts as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        insurer = _insurer(options["insurer"])
        try:
            summary = record_checkup_results(actor=None, insurer=insurer, path=path)
        except AccountError as exc:
            raise CommandError(f"{path.name}: {exc}") from exc
        if options["json"]:
            counts = {
                "file": path.name,
                "rows": summary.rows,
                "matched": summary.matched,
                "outside_year": summary.outside_year,
                "unmatched": summary.unmatched,
                "invalid": summary.invalid,
                "problems": list(summary.problems),
            }
            self.stdout.write(json.dumps(counts, ensure_ascii=False))
            return
        self.stdout.write(
            f"{path.name}: {summary.rows} documents or rows — {summary.matched} matched, "
            f"{summary.outside_year} taken outside the campaign's fiscal year, "
            f"{summary.unmatched} on no campaign, {summary.invalid} unusable"
        )
        for problem in summary.problems:
            self.stdout.write(f"  {problem}")


def _insurer(number: str) -> Insurer:
    """The insurer by its number as stored, or padded to eight digits as the standard
    writes it (00210013 for 210013)."""
    wanted = insurer_number_key(number)
    forms = {wanted, wanted[2:]} if wanted and wanted.startswith("00") else {wanted}
    insurer = Insurer.objects.filter(number__in=forms).first() if wanted else None
    if insurer is None:
        raise CommandError(f"no insurer has the number {number}")
    return insurer
