"""A canary takes the shape of the row whose place it takes: here, how the address
writes its block number."""

import random
import re
from dataclasses import replace

import pytest

from tests.intake.files import people
from yobikake.synth.canaries import canary_like

_WRITTEN_OUT = re.compile(r"\d ?(?:丁目|番)")


@pytest.mark.parametrize(
    ("template_address", "written_out"),
    [
        ("岐阜市若竹町2丁目16番10号", True),
        ("岐阜市本町1番地3", True),
        ("岐阜市若竹町2-16-10", False),
        # Town names that hold 番 or 丁目 are not block numbers written out.
        ("岐阜市一番町12", False),
        ("岐阜市忠節三丁目南町5", False),
    ],
)
def test_a_canary_writes_its_block_number_as_its_template_does(template_address, written_out):
    template = replace(people(1, seed=41)[0], address=template_address)
    for seed in range(20):
        canary = canary_like(
            template,
            municipality="岐阜市",
            fiscal_year=2022,
            phones=["0585-00-0000"],
            rng=random.Random(seed),
        )
        assert bool(_WRITTEN_OUT.search(canary.address)) is written_out, canary.address
