"""Did calling raise uptake? Pure functions over counts, no database.

The comparison is by intention to treat: the called arm is everyone assigned to be
called (reached or not, with a number or not), the other the holdout drawn at random
before the first call. Uptake is "took the checkup in the campaign's fiscal year".

- The difference of the two proportions has a 95% confidence interval by Newcombe's
  hybrid score method (his method 10: Wilson intervals of each arm combined), which
  keeps its coverage with small arms and uptake near 0 or 1, where Wald's does not.
- The p-value is the two-sided two-proportion z-test with the pooled proportion.
- Across campaigns, the differences are pooled by inverse-variance weighting (fixed
  effect, Wald variances), so a campaign with a larger holdout weighs more and
  campaigns with different holdout shares do not bias the pooled figure (adding the
  counts up would).
- A cell with fewer than `SMALL_CELL` people in either arm is suppressed: no counts,
  no estimate (a handful of people of one sex and age band could be recognised).
- Reached against not reached, within the called arm, is not randomised: the people
  who answer differ from those who do not. It is shown, labelled as biased.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
SMALL_CELL = 10
# The specific health checkup's ages (40–74), in the bands insurers report.
AGE_BANDS: tuple[tuple[int, int], ...] = ((40, 49), (50, 59), (60, 64), (65, 69), (70, 74))
SEXES = ("1", "2")  # as intake stores them: 1 male, 2 female


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Tally:
    """People in a group and how many of them took the checkup."""

    n: int = 0
    attended: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.n + other.n, self.attended + other.attended)

    @property
    def uptake(self) -> float | None:
        return self.attended / self.n if self.n else None


def wilson(tally: Tally, z: float = Z95) -> Interval | None:
    """The Wilson score interval of a proportion (None for an empty group)."""
    if tally.n == 0:
        return None
    n, p = tally.n, tally.attended / tally.n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def newcombe(called: Tally, holdout: Tally, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval for uptake(called) − uptake(holdout)."""
    one, two = wilson(called, z), wilson(holdout, z)
    if one is None or two is None:
        raise ValueError("both arms need people")
    p1, p2 = called.attended / called.n, holdout.attended / holdout.n
    d = p1 - p2
    return Interval(
        d - math.sqrt((p1 - one.low) ** 2 + (two.high - p2) ** 2),
        d + math.sqrt((one.high - p1) ** 2 + (p2 - two.low) ** 2),
    )


def two_sided_p(z_score: float) -> float:
    return math.erfc(abs(z_score) / math.sqrt(2))


def z_test(called: Tally, holdout: Tally) -> float:
    """The two-sided p-value of the pooled two-proportion z-test (1.0 when every person,
    or none, took the checkup: there is nothing to tell apart)."""
    pooled = (called.attended + holdout.attended) / (called.n + holdout.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / called.n + 1 / holdout.n))
    if se == 0:
        return 1.0
    return two_sided_p((called.attended / called.n - holdout.attended / holdout.n) / se)


@dataclass(frozen=True)
class Comparison:
    """Called arm against holdout in one cell (a campaign, a sex, an age band)."""

    key: str  # "all", "sex-1", "age-40-49" …
    called: Tally
    holdout: Tally
    difference: float | None = None
    interval: Interval | None = None
    p_value: float | None = None

    @property
    def suppressed(self) -> bool:
        return self.difference is None

    @property
    def called_interval(self) -> Interval | None:
        return None if self.suppressed else wilson(self.called)

    @property
    def holdout_interval(self) -> Interval | None:
        return None if self.suppressed else wilson(self.holdout)


def compare(key: str, called: Tally, holdout: Tally, *, small: int = SMALL_CELL) -> Comparison:
    """The comparison, or a suppressed one (no counts at all) when either arm has fewer
    than `small` people."""
    if called.n < small or holdout.n < small:
        return Comparison(key, Tally(), Tally())
    return Comparison(
        key,
        called,
        holdout,
        difference=called.attended / called.n - holdout.attended / holdout.n,
        interval=newcombe(called, holdout),
        p_value=z_test(called, holdout),
    )


@dataclass(frozen=True)
class Group:
    """People of one arm, sex, age and reached-or-not, counted (a selector's row)."""

    holdout: bool
    sex: str
    age: int
    reached: bool
    n: int
    attended: int


def age_band(age: int) -> str:
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}"
    return "other"


@dataclass(frozen=True)
class Effect:
    overall: Comparison
    by_sex: tuple[Comparison, ...]
    by_age: tuple[Comparison, ...]
    # Within the called arm; not randomised, so biased (shown as such).
    reached: Tally
    not_reached: Tally


def _tally(groups: Iterable[Group]) -> Tally:
    return sum((Tally(g.n, g.attended) for g in groups), Tally())


def _cell(key: str, groups: Sequence[Group], *, small: int) -> Comparison:
    return compare(
        key,
        _tally(g for g in groups if not g.holdout),
        _tally(g for g in groups if g.holdout),
        small=small,
    )


def _small_suppressed(tally: Tally, small: int) -> Tally:
    return tally if tally.n >= small else Tally()


def _split(cells: list[tuple[str, list[Group]]], small: int) -> tuple[Comparison, ...]:
    """One comparison per cell, with secondary suppression: were exactly one cell that has
    people hidden, it would come back as the overall figure minus the others — so the
    smallest shown cell is hidden with it."""
    raw = [
        (key, _tally(g for g in groups if not g.holdout), _tally(g for g in groups if g.holdout))
        for key, groups in cells
    ]
    populated = [r for r in raw if r[1].n + r[2].n > 0]
    hidden = {key for key, called, held in populated if min(called.n, held.n) < small}
    if len(hidden) == 1 and len(populated) > 1:
        shown = [r for r in populated if r[0] not in hidden]
        hidden.add(min(shown, key=lambda r: min(r[1].n, r[2].n))[0])
    return tuple(
        Comparison(key, Tally(), Tally()) if key in hidden else compare(key, c, h, small=small)
        for key, c, h in raw
    )


def estimate(groups: Iterable[Group], *, small: int = SMALL_CELL) -> Effect:
    """A campaign's effect from its counted groups."""
    rows = list(groups)
    called = [g for g in rows if not g.holdout]
    reached = _small_suppressed(_tally(g for g in called if g.reached), small)
    not_reached = _small_suppressed(_tally(g for g in called if not g.reached), small)
    bands = [f"{low}-{high}" for low, high in AGE_BANDS]
    if any(age_band(g.age) == "other" for g in rows):
        bands.append("other")
    return Effect(
        overall=_cell("all", rows, small=small),
        by_sex=_split([(f"sex-{sex}", [g for g in rows if g.sex == sex]) for sex in SEXES], small),
        by_age=_split(
            [(f"age-{band}", [g for g in rows if age_band(g.age) == band]) for band in bands],
            small,
        ),
        # Both or neither: one would give the other back from the called arm's total.
        reached=reached if not_reached.n and reached.n else Tally(),
        not_reached=not_reached if not_reached.n and reached.n else Tally(),
    )


@dataclass(frozen=True)
class Pooled:
    """Campaigns' differences pooled by inverse-variance weights."""

    campaigns: int  # those that counted (not suppressed, with some variance)
    difference: float | None
    interval: Interval | None
    p_value: float | None


def pool(comparisons: Iterable[Comparison]) -> Pooled:
    weights: list[tuple[float, float]] = []
    for c in comparisons:
        if c.suppressed:
            continue
        p1, p2 = c.called.attended / c.called.n, c.holdout.attended / c.holdout.n
        variance = p1 * (1 - p1) / c.called.n + p2 * (1 - p2) / c.holdout.n
        if variance > 0:
            weights.append((1 / variance, p1 - p2))
    if not weights:
        return Pooled(0, None, None, None)
    total = sum(w for w, _ in weights)
    difference = sum(w * d for w, d in weights) / total
    se = math.sqrt(1 / total)
    return Pooled(
        len(weights),
        difference,
        Interval(difference - Z95 * se, difference + Z95 * se),
        two_sided_p(difference / se),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def comparison_dict(c: Comparison) -> dict[str, object]:
    return {
        "cell": c.key,
        "suppressed": c.suppressed,
        "called": _tally_dict(c.called),
        "holdout": _tally_dict(c.holdout),
        "difference": _rounded(c.difference),
        "ci95": (
            None if c.interval is None else [_rounded(c.interval.low), _rounded(c.interval.high)]
        ),
        "p_value": _rounded(c.p_value),
    }


def _tally_dict(t: Tally) -> dict[str, object]:
    return {"n": t.n, "attended": t.attended, "uptake": _rounded(t.uptake)}


METHOD = (
    "intention to treat; 95% CI: Newcombe hybrid score (method 10); "
    "p: two-sided pooled two-proportion z-test; cells under 10 people per arm suppressed"
)


def effect_dict(effect: Effect) -> dict[str, object]:
    return {
        "method": METHOD,
        "overall": comparison_dict(effect.overall),
        "by_sex": [comparison_dict(c) for c in effect.by_sex],
        "by_age": [comparison_dict(c) for c in effect.by_age],
        "reached_split": {
            "biased": True,  # not randomised: who answers differs from who does not
            "reached": _tally_dict(effect.reached),
            "not_reached": _tally_dict(effect.not_reached),
        },
    }


ROW_HEADER = (
    "cell", "called_n", "called_attended", "called_uptake", "holdout_n", "holdout_attended",
    "holdout_uptake", "difference", "ci95_low", "ci95_high", "p_value", "note",
)  # fmt: skip


def effect_rows(effect: Effect) -> list[list[object]]:
    """One row per cell for CSV/XLSX (suppressed cells say so and carry no counts); the
    reached split last, marked biased."""

    def row(c: Comparison) -> list[object]:
        if c.suppressed:
            return [c.key] + [""] * 10 + ["suppressed (<10)"]
        interval = c.interval or Interval(math.nan, math.nan)
        return [
            c.key, c.called.n, c.called.attended, _rounded(c.called.uptake), c.holdout.n,
            c.holdout.attended, _rounded(c.holdout.uptake), _rounded(c.difference),
            _rounded(interval.low), _rounded(interval.high), _rounded(c.p_value), "",
        ]  # fmt: skip

    def split(key: str, t: Tally) -> list[object]:
        counts = [t.n, t.attended, _rounded(t.uptake)] if t.n else ["", "", ""]
        return [key, *counts] + [""] * 8 + ["biased: not randomised"]

    table: list[list[object]] = [list(ROW_HEADER), row(effect.overall)]
    table += [row(c) for c in (*effect.by_sex, *effect.by_age)]
    table += [split("reached", effect.reached), split("not_reached", effect.not_reached)]
    return table
