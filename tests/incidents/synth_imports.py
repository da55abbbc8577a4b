"""`synth` lists imported through the real importer with PER_LIST canaries each, then read
back as a thief holding every key would: what the canary detectors run over
(test_canaries_detector.py, test_canaries_structure.py)."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tests.incidents.test_scoping import opened
from tests.intake.test_import import run
from yobikake.intake.models import ImportFinding, ListImport, Target
from yobikake.intake.reading import map_headers, open_sheet
from yobikake.intake.validation import RowChecker
from yobikake.synth.lists import plan_lists, write_lists
from yobikake.synth.people import Person
from yobikake.tenancy.models import Contract

SCALE, SEED = 0.02, 7
PER_LIST = 10
MIN_ROWS = 150


@dataclass(frozen=True)
class Imported:
    """A list as imported and as its file had it."""

    list_import: ListImport
    rows: list[dict]  # its stored rows opened, by row number, with their clear columns
    planted: set[int]  # the indexes of its canaries among `rows`
    file: list[Person]  # the file's valid rows, in the file's order

    @property
    def excluded(self) -> list[int]:
        """The file rows the import names as excluded (in the clear, as findings)."""
        return sorted(
            ImportFinding.objects.filter(list_import=self.list_import).values_list("row", flat=True)
        )


def import_synth_lists(world, canaries, settings, tmp_path: Path) -> list[Imported]:
    """Every synth list of at least MIN_ROWS rows, imported for insurer A with PER_LIST
    canaries (those of one fiscal year added to each other)."""
    settings.YOBIKAKE_CANARIES_PER_LIST = PER_LIST
    write_lists(tmp_path, scale=SCALE, seed=SEED)
    plans = [plan for plan in plan_lists(scale=SCALE, seed=SEED) if plan.rows >= MIN_ROWS]
    for year in {plan.fiscal_year for plan in plans}:
        Contract.objects.get_or_create(
            insurer=world.insurer_a,
            fiscal_year=year,
            defaults={
                "calling_starts": date(year, 9, 1),
                "calling_ends": date(year, 12, 20),
                "retention_until": date(year + 2, 3, 31),
            },
        )
    imported = []
    for plan in plans:
        path = tmp_path / plan.file_name
        result = run(world, path, policy="exclude", fiscal_year=plan.fiscal_year, existing="add")
        assert result.target_list is not None, result.error_message
        rows, planted = _opened(result.target_list, canaries)
        imported.append(Imported(result, rows, planted, _valid_rows(path, plan.fiscal_year)))
    return imported


def _opened(target_list, canaries) -> tuple[list[dict], set[int]]:
    rows, planted = [], set()
    ids = canaries.of_list(target_list)
    for target in Target.objects.filter(target_list=target_list).order_by("row_number"):
        if target.pk in ids:
            planted.add(len(rows))
        clear = {"sex": target.sex, "age": target.age, "row_number": target.row_number}
        rows.append(opened(target) | clear)
    assert len(planted) == PER_LIST
    return rows, planted


def _valid_rows(path: Path, fiscal_year: int) -> list[Person]:
    """The rows of the file the importer keeps, read by its own reader and checker."""
    sheet = open_sheet(path)
    checker = RowChecker(map_headers(sheet.headers), fiscal_year)
    return [person for row, cells in sheet.rows if (person := checker.check(row, cells)[0])]
