"""The effect estimate as pure functions: known values, small cells, and coverage of a
planted effect over seeded simulations (no database)."""

import math

import pytest

from yobikake.reports.effect import (
    Comparison,
    Group,
    Tally,
    compare,
    estimate,
    newcombe,
    pool,
    wilson,
    z_test,
)
from yobikake.synth.results import draw_attendance


def test_the_wilson_interval_matches_the_published_example():
    # Newcombe (1998), Table I: 81/263 → 0.2553 to 0.3662.
    interval = wilson(Tally(263, 81))
    assert interval.low == pytest.approx(0.2553, abs=1e-4)
    assert interval.high == pytest.approx(0.3662, abs=1e-4)


def test_the_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Table II, method 10: 56/70 − 48/80 → 0.0524 to 0.3339.
    interval = newcombe(Tally(70, 56), Tally(80, 48))
    assert interval.low == pytest.approx(0.0524, abs=1e-4)
    assert interval.high == pytest.approx(0.3339, abs=1e-4)


def test_the_z_test_gives_the_textbook_p_value():
    # 56/70 vs 48/80: pooled 104/150, z ≈ 2.63.
    pooled = 104 / 150
    z = (0.8 - 0.6) / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert z_test(Tally(70, 56), Tally(80, 48)) == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert z_test(Tally(20, 0), Tally(20, 0)) == 1.0


def test_a_cell_with_fewer_than_ten_in_either_arm_is_suppressed_counts_and_all():
    cell = compare("age-70-74", Tally(200, 80), Tally(9, 3))
    assert cell.suppressed and cell.called == Tally() and cell.holdout == Tally()
    assert cell.interval is None and cell.p_value is None and cell.called_interval is None
    assert not compare("all", Tally(10, 3), Tally(10, 1)).suppressed


def test_the_estimate_splits_by_sex_and_age_band_and_reached():
    groups = [
        Group(holdout=False, sex="1", age=45, reached=True, n=30, attended=15),
        Group(holdout=False, sex="1", age=45, reached=False, n=30, attended=6),
        Group(holdout=False, sex="2", age=72, reached=False, n=40, attended=12),
        Group(holdout=True, sex="1", age=45, reached=False, n=12, attended=3),
        Group(holdout=True, sex="2", age=72, reached=False, n=5, attended=1),
    ]
    effect = estimate(groups)
    assert effect.overall.called == Tally(100, 33) and effect.overall.holdout == Tally(17, 4)
    assert effect.overall.difference == pytest.approx(0.33 - 4 / 17)
    men, women = effect.by_sex
    assert women.suppressed  # 5 held out
    # …and so are the men: shown, they would give the women back as overall − men.
    assert men.key == "sex-1" and men.suppressed and men.called == Tally()
    assert [c.key for c in effect.by_age] == [
        "age-40-49", "age-50-59", "age-60-64", "age-65-69", "age-70-74",
    ]  # fmt: skip
    # 70–74 is small (5 held out); 40–49, the only other band with people, goes with it.
    assert effect.by_age[0].suppressed and effect.by_age[4].suppressed
    assert effect.reached == Tally(30, 15) and effect.not_reached == Tally(70, 18)


def test_a_split_never_hides_just_one_cell():
    groups = [
        Group(holdout=False, sex="1", age=45, reached=True, n=40, attended=15),
        Group(holdout=False, sex="2", age=52, reached=True, n=40, attended=12),
        Group(holdout=True, sex="1", age=45, reached=False, n=20, attended=3),
        Group(holdout=True, sex="2", age=52, reached=False, n=20, attended=5),
        Group(holdout=False, sex="2", age=72, reached=False, n=8, attended=1),
        Group(holdout=True, sex="2", age=72, reached=False, n=12, attended=2),
    ]
    effect = estimate(groups)
    shown = [c.key for c in effect.by_age if not c.suppressed]
    # 70–74 is small; one of the two other bands is hidden with it, so neither hidden
    # band is the overall figure minus the rest.
    assert len(shown) == 1 and shown[0] in ("age-40-49", "age-50-59")
    assert effect.not_reached == Tally() and effect.reached == Tally()  # 8 not reached


def test_pooling_weights_campaigns_by_their_precision():
    big = compare("all", Tally(2000, 700), Tally(200, 60))
    small = compare("all", Tally(100, 60), Tally(20, 8))
    pooled = pool([big, small, Comparison("all", Tally(), Tally())])
    assert pooled.campaigns == 2
    assert big.difference < pooled.difference < small.difference
    assert pooled.difference - big.difference < small.difference - pooled.difference
    assert pooled.interval.covers(pooled.difference)
    assert pool([]).difference is None


CALLED, HELD_OUT, P0, PLANTED = 2000, 200, 0.30, 0.05


def test_the_interval_covers_a_planted_five_point_effect_in_at_least_90_of_100_runs():
    covered = 0
    for seed in range(100):
        arms = [False] * CALLED + [True] * HELD_OUT
        attended = draw_attendance(arms, p0=P0, effect=PLANTED, seed=seed)
        called = Tally(CALLED, sum(attended[:CALLED]))
        holdout = Tally(HELD_OUT, sum(attended[CALLED:]))
        covered += compare("all", called, holdout).interval.covers(PLANTED)
    assert covered >= 90, covered
