import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from yobikake.synth.lists import check_arguments, remove_lists, write_lists


class Command(BaseCommand):
    help = "Synthetic data for the demo, the tests and the benchmarks: it describes no one."
    # Writing files needs neither the database nor the URLconf.
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
