"""Canaries cannot be picked out of a decrypted copy of the lists: a detector that scores
each row by how rare its values are within its own list (outliers.py) finds them no
more often than it finds real rows.

The lists are `synth` lists imported through the real importer, their rows opened with
the lists' keys as a thief holding every key would. Canaries are drawn from the
system's random source, so the test is statistical: it fails only when the detector's
edge is far beyond chance (p below one in a million), which the canaries of a list that
they do not fit reach at once."""

from datetime import date

import pytest

from tests.incidents.outliers import by_feature, detect, two_sided_p
from tests.incidents.test_scoping import opened
from tests.intake.test_import import run
from yobikake.intake.models import Target
from yobikake.synth.lists import plan_lists, write_lists
from yobikake.tenancy.models import Contract

SCALE, SEED = 0.02, 7
PER_LIST = 10
MIN_ROWS = 150


def decrypted(target_list, canaries):
    """The list's rows as a thief with its key reads them (the clear columns too), and
    the indexes of its canaries among them."""
    rows, planted = [], set()
    ids = canaries.of_list(target_list)
    for target in Target.objects.filter(target_list=target_list).order_by("row_number"):
        row = opened(target) | {"sex": target.sex, "age": target.age}
        if target.pk in ids:
            planted.add(len(rows))
        rows.append(row)
    assert len(planted) == PER_LIST
    return rows, planted


@pytest.fixture
def imported(world, canaries, settings, tmp_path):
    """Every synth list of at least MIN_ROWS rows, imported with PER_LIST canaries."""
    settings.YOBIKAKE_CANARIES_PER_LIST = PER_LIST
    write_lists(tmp_path, scale=SCALE, seed=SEED)
    lists = []
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
    for plan in plans:
        # Every list goes to insurer A: those of one fiscal year are added to each other.
        path = tmp_path / plan.file_name
        result = run(world, path, policy="exclude", fiscal_year=plan.fiscal_year, existing="add")
        assert result.target_list is not None, result.error_message
        lists.append(decrypted(result.target_list, canaries))
    return lists


def test_a_per_list_outlier_detector_finds_canaries_no_more_often_than_chance(imported):
    figures = detect(imported)
    explained = f"{figures}\n{by_feature(imported)}"
    assert figures.canaries == PER_LIST * len(imported) >= 150
    # Among the rarest tenth of each list, no more canaries than chance allows ...
    assert figures.p_value > 1e-6, explained
    # ... nor are they rarer, or more ordinary, than real rows on the whole.
    assert two_sided_p(figures.rank_z) > 1e-6, explained
