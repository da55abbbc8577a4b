"""The dispositions a call can end in, with the flags the queue acts on: seeded by the
migration (and again by `seed` where a test's flush emptied the table)."""

from typing import Any

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
