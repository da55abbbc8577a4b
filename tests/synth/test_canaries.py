"""A canary takes the shape of the row it is modelled on (here, how the address
writes its block number), and says what its list's rows say as often as they say it."""

import random
import re
from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from tests.intake.files import people
from yobikake.synth.areas import place_of
from yobikake.synth.canaries import (
    ListSample,
    canary_like,
    in_number_order,
    number_after,
    one_more,
    place_in_order,
)

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


# What a canary says follows its list.


def _sample(seed=5, count=300):
    """A list as `synth` writes one, after validation: 大垣市's, area code 0584."""
    from yobikake.synth.lists import generate_lists, plan_lists

    plans = [p for p in plan_lists(scale=0.02, seed=seed) if p.insurer.name == "大垣市"]
    generated = next(iter(generate_lists(plans[:1], seed=seed)))
    return [e.person for e in generated.entries if e.defect is None][:count]


def _canary(template, rows=(), phones=(), neighbours=(), seed=0, in_use=None):
    extra = {"in_use": in_use} if in_use else {}
    return canary_like(
        template,
        municipality="大垣市",
        fiscal_year=2015,
        phones=list(phones),
        rng=random.Random(seed),
        sample=rows,
        neighbours=neighbours,
        **extra,
    )


def test_one_more_value_is_shared_with_as_many_rows_as_a_real_rows_is():
    """Good–Turing: the share of new values that no row has, or one row, or two…, is the
    share of rows whose value no other row has, one other row, two…"""
    rng = random.Random(1)
    values = [f"v{n}" for n in range(200)] + [f"w{n}" for n in range(100) for _ in range(2)]
    values += ["x"] * 50  # 450 rows: 200 alone, 200 in pairs, 50 together
    counts = Counter(values)
    drawn = Counter(
        counts[one_more(values, rng, lambda: f"new{rng.random()}")] for _ in range(9000)
    )
    real = Counter(counts[v] - 1 for v in values)
    for shared in (0, 1):
        assert abs(drawn[shared] / 9000 - real[shared] / len(values)) < 0.02, shared
    # No value is held by 49 rows: a donor holding "x" gives "x" itself.
    assert abs(drawn[50] / 9000 - real[49] / len(values)) < 0.02


def test_a_list_sample_holds_the_rows_written_last():
    sample = ListSample(size=500)
    for start in range(0, 2000, 250):
        sample.add(list(range(start, start + 250)))
    assert sample.rows == list(range(1500, 2000))


def test_a_canarys_town_phone_and_age_come_from_its_lists():
    rows = _sample()
    towns = {place_of(p.address).town for p in rows}
    heads = {p.phone.split("-")[0] for p in rows if p.phone}
    ages = {p.age_on(date(2016, 3, 31)) for p in rows}
    for seed in range(40):
        template = rows[seed]
        canary = _canary(template, rows, seed=seed)
        place = place_of(canary.address)
        assert place is not None and place.town.municipality == "大垣市"
        assert canary.postal_code == f"{place.town.postal_code[:3]}-{place.town.postal_code[3:]}"
        assert bool(canary.phone) == bool(template.phone)
        if canary.phone:
            assert canary.phone.split("-")[0] in heads
            if canary.phone.startswith("0584"):
                assert canary.phone.startswith("0584-0")  # an exchange no one has
        assert canary.age_on(date(2016, 3, 31)) in ages
    assert len(towns) > 50  # drawn as the list's are: many towns, not a few


def test_a_canary_takes_a_watched_number_under_its_templates_area_code():
    rows = _sample()
    pool = ["0584-71-0001", "0584-71-0002", "058-210-0001", "090-1000-0001", "080-1000-0002"]
    landline = next(p for p in rows if p.phone.startswith("0584"))
    mobile = next(p for p in rows if p.phone.startswith(("090", "080", "070")))
    silent = next(p for p in rows if not p.phone)
    for seed in range(10):
        assert _canary(landline, rows, pool, seed=seed).phone in pool[:2]
        assert _canary(mobile, rows, pool, seed=seed).phone in pool[3:]
        assert _canary(silent, rows, pool, seed=seed).phone == ""
    # One already given to another canary of the list is not given again while others are free.
    given = _canary(landline, rows, pool, in_use=lambda field, value: value == pool[0])
    assert given.phone == pool[1]


def test_a_canarys_insured_number_falls_between_its_neighbours():
    rows = _sample()
    before, template, after = (
        replace(rows[0], insured_number="12-0001000"),
        *(replace(rows[1], insured_number=n) for n in ("12-0001010", "12-0001013")),
    )
    numbers = {
        _canary(template, rows, neighbours=[before, after], seed=seed).insured_number
        for seed in range(60)
    }
    assert numbers <= {f"12-{n:07d}" for n in (*range(1001, 1010), 1011, 1012)}
    assert len(numbers) > 5
    # Without neighbours in order: near its template's, never anyone's.
    taken = {f"12-{n:07d}" for n in range(1000, 1030)}
    near = _canary(template, rows, seed=3, in_use=lambda field, value: value in taken)
    assert near.insured_number.startswith("12-") and near.insured_number not in taken
    assert abs(int(near.insured_number[3:]) - 1010) <= 50


def _numbered(rows, serials):
    return [replace(p, insured_number=f"12-{n:07d}") for p, n in zip(rows, serials, strict=False)]


def test_a_canary_among_rows_in_order_gets_the_room_its_template_has():
    """Inserted between two real rows, a canary has the room of one gap where a real row
    has two: it goes in the gap as wide as its template's room, split as that is."""
    rows = _sample()
    # The template (1100) has 30 below it and 10 above: a room of 40, split 3 : 1.
    serials = [1000, 1004, 1052, 1070, 1100, 1110, 1114, 1154, 1160, 1162, 1169]
    around = _numbered(rows, serials)
    template = around[4]
    for seed in range(20):
        canary = _canary(template, rows, neighbours=around, seed=seed)
        assert canary.insured_number == "12-0001144"  # in 1114–1154 (40 wide), 30 on
        assert place_in_order(canary.insured_number, around) == 7
    # Taken, the gap next nearest in width: 1004–1052 (48), 36 on.
    taken = _canary(template, rows, neighbours=around, in_use=lambda f, v: v == "12-0001144")
    assert taken.insured_number == "12-0001040"


def test_where_an_insured_number_goes_among_rows_in_order():
    rows = _numbered(_sample()[:4], [10, 20, 30, 40])
    assert place_in_order("12-0000025", rows) == 2
    assert place_in_order("12-0000025", rows[::-1]) == 2  # in order down
    assert place_in_order("12-0000045", rows) is None
    assert place_in_order("13-0000025", rows) is None  # another symbol's


def test_a_number_after_the_last_row_is_a_step_on_as_the_rows_step():
    rows = _numbered(_sample()[:4], [10, 14, 21, 26])
    rng = random.Random(1)
    after = {number_after(rows, rng, lambda _: False) for _ in range(40)}
    assert after == {"12-0000030", "12-0000031", "12-0000033"}
    down = {number_after(rows[::-1], rng, lambda _: False) for _ in range(40)}
    assert down == {"12-0000006", "12-0000005", "12-0000003"}
    assert number_after(rows, rng, lambda _: True) == ""


def test_in_number_order_tells_a_list_in_insured_number_order():
    rows = _sample()
    ordered = sorted(rows, key=lambda p: p.insured_number)
    assert in_number_order(ordered) and in_number_order(ordered[::-1])
    assert not in_number_order(random.Random(4).sample(ordered, len(ordered)))


def test_a_watched_number_is_written_as_the_lists_numbers_are_however_it_was_typed():
    rows = _sample()
    landline = next(p for p in rows if p.phone.startswith("0584"))
    assert _canary(landline, rows, ["0584710001"]).phone == "0584-71-0001"
