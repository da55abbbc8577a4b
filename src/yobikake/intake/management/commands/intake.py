import csv
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from yobikake.accounts.errors import AccountError
from yobikake.intake import services
from yobikake.intake.models import ColumnMapping, ListImport
from yobikake.intake.reading import FIELD_LABELS
from yobikake.intake.reports import findings_csv
from yobikake.tenancy.models import Insurer

EXIT_REJECTED = 3


class _Job(NamedTuple):
    path: Path
    insurer: Insurer
    fiscal_year: int
    rows: int | None  # as the manifest gives it, for the progress bar
    existing: str  # what becomes of the insurer's earlier list of the year, if any


class Command(BaseCommand):
    help = "Import target-list files (CSV/TSV in CP932 or UTF-8, or XLSX)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="Import one file, or every file of a manifest.")
        imp.add_argument("file", nargs="?", type=Path)
        imp.add_argument("--insurer", metavar="NUMBER", help="the insurer's 6-digit number")
        imp.add_argument("--fiscal-year", type=int, metavar="YYYY")
        imp.add_argument(
            "--manifest",
            type=Path,
            metavar="DIR/manifest.csv",
            help="a CSV of file,insurer_number,fiscal_year[,rows][,existing]; files relative to it",
        )
        imp.add_argument("--policy", choices=["reject", "exclude"], default="reject")
        imp.add_argument(
            "--existing",
            choices=ListImport.Existing.values,
            default="",
            help="when the insurer has a list of the year already: add to it, or replace it",
        )
        imp.add_argument("--json", action="store_true", help="one JSON object per file")
        mapping = sub.add_parser(
            "map", help="Save an insurer's own header for one of Yobikake's fields."
        )
        mapping.add_argument("--insurer", metavar="NUMBER", required=True)
        mapping.add_argument("header", nargs="?", help="the header as the insurer's files have it")
        mapping.add_argument("field", nargs="?", choices=sorted(FIELD_LABELS), metavar="FIELD")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "map":
            self._map(options)
            return
        jobs = self._jobs(options)
        rejected = 0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            disable=options["json"] or not sys.stderr.isatty(),
            console=None,
        ) as bar:
            overall = bar.add_task("rows", total=sum(job.rows or 0 for job in jobs) or None)
            done_before = 0
            for job in jobs:
                result = self._import_one(job, options["policy"], bar, overall, done_before)
                done_before += result.rows_submitted
                rejected += result.state != ListImport.State.ACCEPTED
                self._report(result, options["json"])
        if rejected:
            sys.exit(EXIT_REJECTED)

    def _map(self, options: dict[str, Any]) -> None:
        """Save (or, without HEADER and FIELD, list) the insurer's own headers."""
        insurer = self._insurer(options["insurer"])
        if options["header"] and options["field"]:
            services.save_column_mapping(
                insurer=insurer, header=options["header"], field=options["field"]
            )
        elif options["header"] or options["field"]:
            raise CommandError("give both HEADER and FIELD, or neither to list")
        for mapping in ColumnMapping.objects.filter(insurer=insurer).order_by("header"):
            self.stdout.write(f"{mapping.header}\t{mapping.field}")

    def _jobs(self, options: dict[str, Any]) -> list[_Job]:
        if options["manifest"]:
            if any(options[o] for o in ("file", "insurer", "fiscal_year", "existing")):
                raise CommandError(
                    "--manifest takes no FILE, --insurer, --fiscal-year or --existing"
                )
            return self._manifest(options["manifest"])
        if not (options["file"] and options["insurer"] and options["fiscal_year"]):
            raise CommandError("give FILE --insurer NUMBER --fiscal-year YYYY, or --manifest")
        insurer = self._insurer(options["insurer"])
        return [_Job(options["file"], insurer, options["fiscal_year"], None, options["existing"])]

    def _insurer(self, number: str) -> Insurer:
        insurer = Insurer.objects.filter(number=number).first()
        if insurer is None:
            raise CommandError(f"no insurer has the number {number}")
        return insurer

    def _manifest(self, manifest: Path) -> list[_Job]:
        if not manifest.is_file():
            raise CommandError(f"no manifest at {manifest}")
        jobs = []
        with manifest.open(encoding="utf-8-sig", newline="") as f:
            for line, row in enumerate(csv.DictReader(f), 2):
                try:
                    path = manifest.parent / row["file"]
                    year = int(row["fiscal_year"])
                    rows = int(row["rows"]) if row.get("rows") else None
                    number = row["insurer_number"]
                    existing = ListImport.Existing(row["existing"]) if row.get("existing") else ""
                except (KeyError, TypeError, ValueError) as exc:
                    raise CommandError(
                        f"{manifest}:{line}: needs file,insurer_number,fiscal_year "
                        "(existing, if given: add or replace)"
                    ) from exc
                jobs.append(_Job(path, self._insurer(number), year, rows, existing))
        return jobs

    def _import_one(self, job: _Job, policy, bar, overall, done_before) -> ListImport:
        if not job.path.is_file():
            raise CommandError(f"no file at {job.path}")
        try:
            list_import = services.start_import(
                actor=None,
                insurer=job.insurer,
                fiscal_year=job.fiscal_year,
                file_name=job.path.name,
                file_sha256=services.file_sha256(job.path),
                policy=policy,
                existing=job.existing,
            )
        except AccountError as exc:
            hint = " (--existing add | --existing replace)" if exc.code == "list_exists" else ""
            raise CommandError(f"{job.path.name}: {exc}{hint}") from exc
        bar.update(overall, description=job.path.name)
        return services.run_import(
            list_import, job.path, progress=lambda n: bar.update(overall, completed=done_before + n)
        )

    def _report(self, result: ListImport, as_json: bool) -> None:
        report = ""
        if result.findings_count or result.error_code:
            directory = Path(settings.YOBIKAKE_HOME) / "reports"
            directory.mkdir(mode=0o700, exist_ok=True)
            path = directory / f"import-{result.pk}-findings.csv"
            path.write_text(findings_csv(result), encoding="utf-8")
            report = str(path)
        summary = {
            "import_id": result.pk,
            "file": result.file_name,
            "insurer_number": result.insurer.number,
            "fiscal_year": result.fiscal_year,
            "state": result.state,
            "rows_submitted": result.rows_submitted,
            "rows_accepted": result.rows_accepted,
            "rows_excluded": result.rows_excluded,
            "findings": result.findings_count,
            "error": result.error_code,
            "list_id": result.target_list_id,
            "report": report,
        }
        if as_json:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
            return
        line = (
            f"{result.file_name}: {result.state} — {result.rows_accepted}/{result.rows_submitted} "
            f"rows accepted, {result.findings_count} findings"
        )
        if result.error_code:
            line += f" ({result.error_code}: {result.error_message})"
        if report:
            line += f"; report: {report}"
        self.stdout.write(line)
