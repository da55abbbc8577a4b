"""Canaries cannot be picked out by where they sit: in the clear row numbers, or in a
decrypted copy by the file's order. Each is inserted between real rows, the rows after
it numbered one on, so row numbers run on without a hole or a tail, every real row stays
where the file had it, among its neighbours, and a canary sits where its number belongs,
with the room around it a real row has.

The lists are `synth` lists (written in insured-number order, as most insurers' are),
imported through the real importer with ten canaries each. The detectors are those of
order.py; as in test_canaries_detector.py, they fail the test only when their edge is
far beyond chance (p below one in a million)."""

import pytest

from tests.incidents.order import in_number_order, out_of_order, put_back, squeezed
from tests.incidents.outliers import binomial_tail, detect, two_sided_p
from tests.incidents.synth_imports import PER_LIST, import_synth_lists
from yobikake.intake.models import Target


@pytest.fixture
def imported(world, canaries, settings, tmp_path):
    return import_synth_lists(world, canaries, settings, tmp_path)


def _fields(row) -> tuple[str, ...]:
    """A row's sealed fields as text: a person from the file, or a row opened."""
    if isinstance(row, dict):
        return tuple(row[f] for f in Target.SEALED_FIELDS)
    return tuple(
        (value.isoformat() if value else "") if f == "birth_date" else value
        for f in Target.SEALED_FIELDS
        for value in [getattr(row, f)]
    )


def test_row_numbers_run_on_without_a_tail_or_a_hole(imported):
    """In the clear: rows numbered past the file's last row would be real people a
    canary displaced; a hole where the file had an excluded row, lined up with the
    import's findings (file rows, in the clear), would tell how many canaries came
    before it."""
    for one in imported:
        numbers = [row["row_number"] for row in one.rows]
        sent = one.list_import.rows_submitted
        assert numbers[-1] <= sent + PER_LIST
        # Rows stored were numbered 1, 2, 3 … as they reached the writer; a hole is
        # only where one was found, once sealed, to repeat someone (none here).
        assert numbers == list(range(1, len(one.file) + PER_LIST + 1))
        assert one.list_import.rows_accepted == len(one.file)
    assert any(one.excluded for one in imported)  # findings to line up, were there holes


def test_real_rows_keep_the_files_order_and_canaries_sit_in_it(imported):
    for one in imported:
        real = [_fields(row) for i, row in enumerate(one.rows) if i not in one.planted]
        assert real == [_fields(person) for person in one.file]
        # A list in insured-number order stays in it, its canaries included.
        if in_number_order(one.rows):
            assert out_of_order(one.rows) == []


def test_putting_rows_back_in_number_order_finds_canaries_no_more_often_than_chance(imported):
    ordered = [one for one in imported if in_number_order(one.rows)]
    assert len(ordered) >= 10
    flagged = hits = 0
    chance = 0.0
    for one in ordered:
        found = put_back(one.rows)
        flagged += len(found)
        hits += len(found & one.planted)
        chance += len(found) * len(one.planted) / len(one.rows)
    share = chance / flagged if flagged else 0.0
    p_value = binomial_tail(flagged, share, hits) if flagged else 1.0
    assert p_value > 1e-6, f"{hits} canaries among {flagged} rows flagged (chance {chance:.1f})"


def test_the_room_around_a_canarys_insured_number_is_as_a_real_rows(imported):
    """A canary put into a gap between two real rows' numbers, drawn without regard to
    its size, would have the room of one gap where a real row has two: the rows with the
    least room would be canaries."""
    ordered = [(one.rows, one.planted) for one in imported if in_number_order(one.rows)]
    figures = detect(ordered, score=squeezed)
    assert figures.canaries >= 100
    assert figures.p_value > 1e-6, figures
    assert two_sided_p(figures.rank_z) > 1e-6, figures
