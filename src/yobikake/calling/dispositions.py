"""The dispositions a call can end in, with the flags the queue acts on: seeded by the
migration (and again by `seed` where a test's flush emptied the table)."""

import time
from typing import Any

# The outcomes are read on every call and change perhaps once a year: each process keeps
# them for a minute.
_CACHE_SECONDS = 60
_cache: tuple[float, tuple[Any, ...]] = (0.0, ())

# code, label, shortcut, flags, minutes before the next try
DISPOSITIONS = [
    (
        "intends",
        "受診予定",
        "1",
        {"reached_person": True, "callable_again": False, "intends_to_attend": True},
        0,
    ),
    (
        "attended",
        "受診済申告",
        "2",
        {"reached_person": True, "callable_again": False, "attended": True},
        0,
    ),
    ("considering", "検討中", "3", {"reached_person": True}, 7 * 24 * 60),
    ("declined", "拒否", "4", {"reached_person": True, "callable_again": False}, 0),
    ("family_message", "家族伝言", "5", {"reached_household": True}, 3 * 24 * 60),
    ("no_answer", "不在", "6", {}, 4 * 60),
    ("voicemail", "留守番電話", "7", {}, 4 * 60),
    ("busy", "話し中", "8", {}, 30),
    ("wrong_number", "番号誤り", "9", {"callable_again": False, "number_bad": True}, 0),
    (
        "do_not_call",
        "架電停止希望",
        "0",
        {"reached_person": True, "callable_again": False, "do_not_call": True},
        0,
    ),
    (
        "not_eligible",
        "対象外（転出・死亡・入院）",
        "n",
        {"reached_household": True, "callable_again": False, "not_eligible": True},
        0,
    ),
    ("callback", "折り返し予約", "c", {"reached_person": True, "callback": True}, 0),
]


def seed(Disposition: Any) -> None:
    forget()
    for order, (code, label, shortcut, flags, minutes) in enumerate(DISPOSITIONS):
        Disposition.objects.update_or_create(
            code=code,
            defaults={
                "label": label,
                "shortcut": shortcut,
                "order": order,
                "retry_minutes": minutes,
                **flags,
            },
        )


def current() -> tuple[Any, ...]:
    """Every disposition in order, from this process's copy if it is under a minute old."""
    global _cache
    from yobikake.calling.models import Disposition

    read_at, rows = _cache
    if not rows or time.monotonic() - read_at > _CACHE_SECONDS:
        rows = tuple(Disposition.objects.all())
        _cache = (time.monotonic(), rows)
    return rows


def by_code(code: str) -> Any | None:
    return next((d for d in current() if d.code == code), None)


def forget() -> None:
    global _cache
    _cache = (0.0, ())
