"""Canaries cannot be picked out of a decrypted copy of the lists: a detector that scores
each row by how rare its values are within its own list (outliers.py) finds them no
more often than it finds real rows.

The lists are `synth` lists imported through the real importer, their rows opened with
the lists' keys as a thief holding every key would. Canaries are drawn from the
system's random source, so the test is statistical: it fails only when the detector's
edge is far beyond chance (p below one in a million), which the canaries of a list that
they do not fit reach at once."""

import pytest

from tests.incidents.outliers import by_feature, detect, two_sided_p
from tests.incidents.synth_imports import PER_LIST, import_synth_lists


@pytest.fixture
def imported(world, canaries, settings, tmp_path):
    """Each list's rows opened, and the indexes of its canaries among them."""
    lists = import_synth_lists(world, canaries, settings, tmp_path)
    return [(imported.rows, imported.planted) for imported in lists]


def test_a_per_list_outlier_detector_finds_canaries_no_more_often_than_chance(imported):
    figures = detect(imported)
    explained = f"{figures}\n{by_feature(imported)}"
    assert figures.canaries == PER_LIST * len(imported) >= 150
    # Among the rarest tenth of each list, no more canaries than chance allows ...
    assert figures.p_value > 1e-6, explained
    # ... nor are they rarer, or more ordinary, than real rows on the whole.
    assert two_sided_p(figures.rank_z) > 1e-6, explained
