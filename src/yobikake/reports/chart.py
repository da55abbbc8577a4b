"""The effect chart's geometry, drawn as SVG by the template (no script, no library):
per cell, a bar for each arm's uptake with its 95% Wilson interval as a whisker."""

import math
from dataclasses import dataclass

from yobikake.reports.effect import Comparison, Interval, Tally

WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 44


@dataclass(frozen=True)
class Bar:
    arm: str  # "called" | "holdout"
    x: float
    width: float
    y: float
    height: float
    whisker_top: float
    whisker_bottom: float
    percent: float

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class Group:
    key: str
    label_x: float
    bars: tuple[Bar, Bar]


@dataclass(frozen=True)
class Tick:
    y: float
    percent: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    baseline: float
    right: int
    groups: tuple[Group, ...]
    ticks: tuple[Tick, ...]


def uptake_chart(cells: list[Comparison]) -> Chart | None:
    """The chart of the cells that are not suppressed; None if none is left."""
    shown = [c for c in cells if not c.suppressed]
    if not shown:
        return None
    highest = max(
        i.high for c in shown for i in (c.called_interval, c.holdout_interval) if i is not None
    )
    top_percent = max(10, math.ceil(highest * 10) * 10)  # the next 10% above the whiskers
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height

    def y(share: float) -> float:
        return round(baseline - plot_height * share * 100 / top_percent, 1)

    slot = (WIDTH - LEFT - RIGHT) / len(shown)
    bar_width = round(slot * 0.3, 1)

    def bar(arm: str, x: float, tally: Tally, interval: Interval | None) -> Bar:
        uptake = tally.uptake or 0.0
        whisker = interval or Interval(uptake, uptake)
        return Bar(
            arm, round(x, 1), bar_width, y(uptake), round(baseline - y(uptake), 1),
            y(whisker.high), y(whisker.low), round(uptake * 100, 1),
        )  # fmt: skip

    groups = tuple(
        Group(
            c.key,
            round(LEFT + slot * (i + 0.5), 1),
            (
                bar("called", LEFT + slot * i + slot * 0.15, c.called, c.called_interval),
                bar("holdout", LEFT + slot * i + slot * 0.55, c.holdout, c.holdout_interval),
            ),
        )
        for i, c in enumerate(shown)
    )
    ticks = tuple(Tick(y(p / 100), p) for p in range(0, top_percent + 1, 10))
    return Chart(WIDTH, HEIGHT, LEFT, baseline, WIDTH - RIGHT, groups, ticks)
