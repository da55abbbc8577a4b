"""Detectors a thief with a decrypted copy of the lists would run on where rows sit
rather than on what they say: most insurers send their lists in insured-number order,
so a row out of that order, or one squeezed in between two close numbers, stands out.
Used by test_canaries_structure.py, which asks that they do no better than chance."""

import bisect
import itertools
import re
from collections.abc import Sequence

_LAST_DIGITS = re.compile(r"(\d+)(\D*)$")

Key = tuple[str, str, int, int]  # symbol, what follows the digits, their width, their value


def number_key(row: dict) -> Key | None:
    """An insured number as a list orders it: its symbol, then its last run of digits."""
    number = row["insured_number"] or ""
    found = _LAST_DIGITS.search(number)
    if not found:
        return None
    digits = found.group(1)
    return number[: found.start()], found.group(2), len(digits), int(digits)


def _series(a: Key, b: Key) -> bool:
    return a[:3] == b[:3]


def in_number_order(rows: Sequence[dict]) -> bool:
    """Whether the rows run up in insured-number order, nearly all of them (as a thief
    would judge a list worth putting back in order)."""
    keys = [k for k in map(number_key, rows) if k is not None]
    steps = [a < b for a, b in itertools.pairwise(keys)]
    return len(steps) >= 10 and sum(steps) >= 0.9 * len(steps)


def out_of_order(rows: Sequence[dict]) -> list[int]:
    """The rows off the longest run of rows in number order: those to put back."""
    keyed = [(i, k) for i, row in enumerate(rows) if (k := number_key(row)) is not None]
    kept = set(_longest_increasing(keyed))
    return [i for i, _ in keyed if i not in kept]


def put_back(rows: Sequence[dict]) -> set[int]:
    """The attack on a list in number order: take out the rows off its order, put each
    back where its number fits among the rest, and flag the rows either side of that
    place (whoever took its place sits there)."""
    if not in_number_order(rows):
        return set()
    keyed = [(i, k) for i, row in enumerate(rows) if (k := number_key(row)) is not None]
    kept = _longest_increasing(keyed)
    keys = [number_key(rows[i]) for i in kept]
    flagged: set[int] = set()
    for i, key in keyed:
        if i in set(kept):
            continue
        at = bisect.bisect(keys, key)
        flagged |= {kept[j] for j in (at - 1, at) if 0 <= j < len(kept)}
    return flagged


def _longest_increasing(keyed: Sequence[tuple[int, Key]]) -> list[int]:
    """The indexes of a longest strictly increasing run of keys (patience sorting)."""
    tails: list[Key] = []  # the least last key of a run of each length
    tail_at: list[int] = []  # where in `keyed` that run ends
    before = [-1] * len(keyed)
    for n, (_, key) in enumerate(keyed):
        at = bisect.bisect_left(tails, key)
        if at == len(tails):
            tails.append(key)
            tail_at.append(n)
        else:
            tails[at], tail_at[at] = key, n
        before[n] = tail_at[at - 1] if at else -1
    run, n = [], tail_at[-1] if tail_at else -1
    while n >= 0:
        run.append(keyed[n][0])
        n = before[n]
    return run[::-1]


def squeezed(rows: Sequence[dict]) -> list[float]:
    """Each row's score for being squeezed in: the fewer numbers between the rows before
    and after it (the room it was given), the higher. A canary put into the gap between
    two real rows has the room of one gap, a real row that of two. Rows not between two
    of their series score as the median row."""
    keys = [number_key(row) for row in rows]
    rooms: list[float | None] = [None] * len(rows)
    for i in range(1, len(rows) - 1):
        before, own, after = keys[i - 1], keys[i], keys[i + 1]
        if before and own and after and _series(before, own) and _series(own, after):
            rooms[i] = abs(after[3] - before[3])
    known = sorted(r for r in rooms if r is not None)
    median = known[len(known) // 2] if known else 0.0
    return [-(median if room is None else room) for room in rooms]
