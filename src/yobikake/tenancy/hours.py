"""Calling hours as people type them on the command line: `9:00-20:00` (Asia/Tokyo)."""

import re
from datetime import time

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~〜]\s*(\d{1,2}):(\d{2})\s*$")


def parse_hours(text: str) -> tuple[time, time]:
    """(from, until) of `HH:MM-HH:MM`; `24:00` is the end of the day. ValueError when the
    text is not that, or the hours end before they start."""
    match = _HOURS.match(text)
    if match is None:
        raise ValueError(f"{text} is not calling hours (HH:MM-HH:MM)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h2, m2) == (24, 0):
        h2, m2 = 23, 59
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60) or (h1, m1) >= (h2, m2):
        raise ValueError(f"{text}: the hours must lie within a day and end after they start")
    return time(h1, m1), time(h2, m2)
