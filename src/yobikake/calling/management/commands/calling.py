import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yobikake.accounts.errors import AccountError
from yobikake.calling import research
from yobikake.tenancy.models import Insurer


class Command(BaseCommand):
    help = "Calling: phone research."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        directory = sub.add_parser(
            "import-directory",
            help="Match a phone directory (氏名, 住所, 電話番号[, カナ氏名]) against the "
            "insurer's people waiting for phone research.",
        )
        directory.add_argument("file", type=Path)
        directory.add_argument("--insurer", metavar="NUMBER", required=True)
        directory.add_argument("--json", action="store_true", help="the counts as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        insurer = Insurer.objects.filter(number=options["insurer"]).first()
        if insurer is None:
            raise CommandError(f"no insurer has the number {options['insurer']}")
        try:
            counts = research.import_directory(actor=None, insurer=insurer, path=path)
        except AccountError as exc:
            raise CommandError(f"{path.name}: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(counts.as_dict()))
            return
        self.stdout.write(
            f"{path.name}: {counts.rows} rows — {counts.matched} matched, "
            f"{counts.unmatched} unmatched, {counts.invalid} unusable; "
            f"{counts.accepted} numbers stored, {counts.ambiguous} left to researchers "
            f"(ambiguous), {counts.busy} being researched"
        )
