import re
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from yobikake.custody.protocol import CustodyUnavailable
from yobikake.intake.reading import UnreadableFile
from yobikake.synth import cda, leak
from yobikake.synth.lists import check_arguments, remove_lists, write_lists
from yobikake.synth.people import synthetic_people


class Command(BaseCommand):
    help = "Synthetic data for the demo, the tests and the benchmarks: it describes no one."
    # Lists need neither the database nor the URLconf; a leak needs the database only.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        lists = sub.add_parser(
            "lists",
            help="Write the seed's target lists as files, one per insurer and fiscal year, "
            "and a manifest.csv.",
        )
        lists.add_argument(
            "--scale",
            type=float,
            default=1.0,
            metavar="S",
            help="0 < S ≤ 1. Each insurer's rows total round(its seed total × S), at least one "
            "per file; 1.0 writes the seed's 483,468 rows.",
        )
        lists.add_argument(
            "--seed", type=int, default=0, metavar="N", help="Same seed, same bytes."
        )
        lists.add_argument(
            "--out",
            type=Path,
            required=True,
            metavar="DIR",
            help="Made if missing; must be empty (see --force).",
        )
        lists.add_argument(
            "--xlsx-share",
            type=float,
            default=0.1,
            metavar="F",
            help="Share of the files written as XLSX rather than CSV (default 0.1).",
        )
        lists.add_argument(
            "--force",
            action="store_true",
            help="Write into a non-empty DIR, replacing the lists and manifest of an earlier run.",
        )

        made = sub.add_parser(
            "leak",
            help="Write a synthetic leaked file: stored people re-typed as a list broker would "
            "have them, with unrelated people among them, and the truth about each row. "
            "Test and benchmark installations only.",
        )
        made.add_argument(
            "--from-store",
            action="store_true",
            help="Take the people from the database (every active list), opened with their "
            "lists' keys: refused where any organisation is real, and an audit event.",
        )
        made.add_argument(
            "--rows", type=int, required=True, metavar="N", help="Stored people to take."
        )
        made.add_argument(
            "--noise",
            default=",".join(f"{noise}={share}" for noise, share in leak.DEFAULT_NOISE.items()),
            metavar="CLASS=SHARE,…",
            help="Shares of the rows re-typed by each noise class, adding up to 1: format "
            "(formatting only), typo (and one typo in one field), dropped (and one cell "
            "emptied). Default %(default)s.",
        )
        made.add_argument(
            "--unrelated",
            type=float,
            default=0.1,
            metavar="F",
            help="Add round(N × F) people who are on no list (default 0.1).",
        )
        made.add_argument(
            "--canaries",
            choices=("all", "none"),
            default="all",
            help="all (default): every canary of every list the rows come from is in the "
            "leak, as in a stolen copy of whole lists; none: no canary.",
        )
        made.add_argument(
            "--columns",
            default=",".join(leak.DEFAULT_COLUMNS),
            metavar="COLUMN,…",
            help=f"The file's columns, among {', '.join(leak.LEAK_COLUMNS)} (default: all "
            "but insured_number, which brokers rarely have).",
        )
        made.add_argument(
            "--seed", type=int, default=0, metavar="S", help="Same seed and database, same file."
        )
        made.add_argument("--out", type=Path, required=True, metavar="FILE", help="The leak (CSV).")
        made.add_argument(
            "--truth",
            type=Path,
            metavar="FILE",
            help="Also write the truth as CSV: leak_row (the header is row 1), target_id "
            "(empty for an unrelated person), noise, canary (0/1).",
        )

        cda = sub.add_parser(
            "cda",
            help="Write synthetic checkup results in the national standard electronic format "
            "as real senders do (a ZIP submission unit: HL7 CDA documents, one per person, "
            "under DATA/, with CLAIMS/, XSD/, the ix08 index and su08 summary; eight-digit "
            "insurer numbers) for the results upload page and `results import`.",
        )
        cda.add_argument(
            "--from-list",
            type=Path,
            metavar="FILE",
            help="Take the people from a list file as `synth lists` writes them "
            "(<insurer number>_<fiscal year>.csv|xlsx): a share of its rows took the checkup, "
            "so the file matches that list's people once imported. Without it, --people "
            "synthetic people who are on no list.",
        )
        cda.add_argument(
            "--people", type=int, default=20, metavar="N", help="Without --from-list (default 20)."
        )
        cda.add_argument(
            "--share",
            type=float,
            default=0.3,
            metavar="F",
            help="Share of the list's people who took the checkup (default 0.3).",
        )
        cda.add_argument(
            "--insurer",
            metavar="NUMBER",
            help="The insurer number the documents carry (default: the list file's name, or "
            "a synthetic number).",
        )
        cda.add_argument(
            "--fiscal-year",
            type=int,
            metavar="YYYY",
            help="The checkups' fiscal year (default: the list file's name, or required).",
        )
        cda.add_argument("--seed", type=int, default=0, metavar="S", help="Same seed, same file.")
        cda.add_argument("--out", type=Path, required=True, metavar="FILE", help="The ZIP.")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(**options)

    def _lists(
        self, scale: float, seed: int, out: Path, xlsx_share: float, force: bool, **_: Any
    ) -> None:
        try:
            check_arguments(scale=scale, xlsx_share=xlsx_share)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} is not a directory.")
        if out.is_dir() and any(out.iterdir()):
            if not force:
                raise CommandError(
                    f"{out} is not empty; pass --force to write over an earlier run."
                )
            remove_lists(out)
        started = time.monotonic()
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True)) as progress:
            task = progress.add_task("rows", total=None)
            manifest = write_lists(
                out,
                scale=scale,
                seed=seed,
                xlsx_share=xlsx_share,
                progress=lambda rows, total: progress.update(task, advance=rows, total=total),
            )
        xlsx = sum(row.file.endswith(".xlsx") for row in manifest)
        self.stdout.write(
            f"wrote {len(manifest)} lists ({len(manifest) - xlsx} CSV, {xlsx} XLSX), "
            f"{sum(row.rows for row in manifest):,} rows, to {out} in "
            f"{time.monotonic() - started:.1f} s"
        )

    def _cda(
        self,
        from_list: Path | None,
        people: int,
        share: float,
        insurer: str | None,
        fiscal_year: int | None,
        seed: int,
        out: Path,
        **_: Any,
    ) -> None:
        named = re.fullmatch(r"(\d{6,8})_(\d{4})", from_list.stem) if from_list else None
        insurer = insurer or (named.group(1) if named else cda.SYNTHETIC_INSURER_NUMBER)
        fiscal_year = fiscal_year or (int(named.group(2)) if named else None)
        if fiscal_year is None:
            raise CommandError("Say which fiscal year the checkups were in: --fiscal-year.")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent} is not a directory.")
        try:
            if from_list is None:
                if people < 1:
                    raise ValueError("--people must be at least 1.")
                everyone = synthetic_people(people, seed=seed, fiscal_year=fiscal_year)
                taken = cda.results_sample(everyone, fiscal_year=fiscal_year, share=1, seed=seed)
            else:
                everyone = cda.people_of_list(from_list, fiscal_year)
                taken = cda.results_sample(
                    everyone, fiscal_year=fiscal_year, share=share, seed=seed
                )
            documents = cda.write_cda_zip(taken, out, insurer_number=insurer)
        except (OSError, UnreadableFile, ValueError) as exc:
            raise CommandError(str(exc)) from None
        source = f"of {len(everyone):,} people in {from_list}" if from_list else "synthetic"
        self.stdout.write(
            f"wrote {documents:,} checkup documents ({source}; insurer {insurer}, "
            f"FY{fiscal_year}) to {out}"
        )

    def _leak(
        self,
        from_store: bool,
        rows: int,
        noise: str,
        unrelated: float,
        canaries: str,
        columns: str,
        seed: int,
        out: Path,
        truth: Path | None,
        **_: Any,
    ) -> None:
        if not from_store:
            raise CommandError("Say where the people come from: --from-store.")
        try:
            options = leak.LeakOptions(
                rows=rows,
                noise=leak.parse_noise(noise),
                unrelated=unrelated,
                canaries=canaries == "all",
                columns=leak.parse_columns(columns),
                seed=seed,
            )
            leak.check_options(options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for path in filter(None, (out, truth)):
            if not path.parent.is_dir():
                raise CommandError(f"{path.parent} is not a directory.")
        started = time.monotonic()
        try:
            made = leak.leak_from_store(options)
        except leak.NotATestInstallation:
            raise CommandError(
                "Refused: this installation holds real organisations, or its custodian is "
                "not one of synthetic organisations. A synthetic leak has the custodian open "
                "stored people in bulk, past the reveal gate; make it on a test or benchmark "
                "installation, whose custodian's home was made with "
                "`yobikake custodian init --synthetic`."
            ) from None
        except CustodyUnavailable:
            raise CommandError(
                "The custodian cannot be reached: a synthetic leak is opened by the custodian "
                "(start it, or run yobikake demo)."
            ) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        encoding = leak.write_leak(made, out, truth)
        canary_rows = sum(row.canary for row in made.rows)
        unrelated_rows = sum(row.target_id is None for row in made.rows)
        self.stdout.write(
            f"wrote {len(made.rows):,} rows to {out} ({encoding}): {rows:,} stored people from "
            f"{made.lists} lists, {canary_rows} canaries, {unrelated_rows:,} unrelated, in "
            f"{time.monotonic() - started:.1f} s" + (f"; the truth in {truth}" if truth else "")
        )
