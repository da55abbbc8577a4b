"""A detector a thief with a decrypted copy of the lists would run to pick out canaries:
score every row by how rare each of its values (or their prefixes) is within its own
list, and take the rarest rows. Used by test_canaries_detector.py, which asks that it do
no better than chance; `detect` runs other scores too (order.py)."""

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

_DIGITS = re.compile(r"\d+")
_LAST_DIGITS = re.compile(r"(\d+)\D*$")
_PREFECTURE = re.compile(r"^..[都道府県]|^...県")


def _insured_symbol(row: dict) -> str:
    number = row["insured_number"] or ""
    found = _LAST_DIGITS.search(number)
    return number[: found.start()] if found else number


def _insured_prefix(row: dict) -> str:
    number = row["insured_number"] or ""
    found = _LAST_DIGITS.search(number)
    return f"{len(found.group(1))}:{found.group(1)[:3]}" if found else ""


def _phone_groups(row: dict, n: int) -> str:
    return "-".join((row["phone"] or "").split("-")[:n])


def _name_part(field: str, index: int) -> Callable[[dict], str]:
    def part(row: dict) -> str:
        parts = (row[field] or "").split(" ")
        return parts[index] if len(parts) > index else ""

    return part


def _town(row: dict) -> str:
    """The address up to its first number: the prefecture dropped, the town kept."""
    address = _PREFECTURE.sub("", row["address"] or "")
    return _DIGITS.split(address, maxsplit=1)[0]


def _town_and_chome(row: dict) -> str:
    """The address up to and including its first number (the 丁目 of a 丁目 town)."""
    address = _PREFECTURE.sub("", row["address"] or "")
    found = _DIGITS.search(address)
    return address[: found.end()] if found else address


def _form(row: dict) -> str:
    """How the address is written, its words and numbers blanked: 丁目・番 or hyphens,
    a building or none."""
    address = _PREFECTURE.sub("", row["address"] or "")
    rest = address[len(_town(row)) :]
    return _DIGITS.sub("9", rest.split(" ")[0]) + (" +" if " " in rest else "")


def _birth_year(row: dict) -> str:
    return (row["birth_date"] or "")[:4] or str(row.get("age", ""))


FEATURES: dict[str, Callable[[dict], str]] = {
    "insured symbol": _insured_symbol,
    "insured prefix": _insured_prefix,
    "phone area code": lambda row: _phone_groups(row, 1),
    "phone exchange": lambda row: _phone_groups(row, 2),
    "family name": _name_part("name_kanji", 0),
    "given name": _name_part("name_kanji", 1),
    "family name kana": _name_part("name_kana", 0),
    "given name kana": _name_part("name_kana", 1),
    "town": _town,
    "town and 丁目": _town_and_chome,
    "address form": _form,
    "postal code": lambda row: row["postal_code"] or "",
    "birth year": _birth_year,
    "sex": lambda row: row["sex"],
}


def rarity(rows: Sequence[dict]) -> list[float]:
    """Each row's score: the sum over features of -log of how many other rows of the
    list share its value (plus one half), over the rows of the list."""
    scores = [0.0] * len(rows)
    n = len(rows)
    for feature in FEATURES.values():
        values = [feature(row) for row in rows]
        counts = Counter(values)
        for i, value in enumerate(values):
            scores[i] -= math.log((counts[value] - 1 + 0.5) / n)
    return scores


def by_feature(lists: Sequence[tuple[Sequence[dict], set[int]]]) -> str:
    """For each feature, how many canaries have a value no other row of their list has,
    beside how many would by the share of real rows of their list that do: where a
    detector's edge would come from."""
    lines = []
    for name, feature in FEATURES.items():
        alone = expected = 0.0
        for rows, planted in lists:
            values = [feature(row) for row in rows]
            counts = Counter(values)
            real = [counts[v] == 1 for i, v in enumerate(values) if i not in planted]
            alone += sum(counts[values[i]] == 1 for i in planted)
            expected += len(planted) * sum(real) / len(real)
        lines.append(f"  {name}: {alone:.0f} canaries alone with their value ({expected:.1f})")
    return "\n".join(lines)


@dataclass(frozen=True)
class Figures:
    rows: int
    canaries: int
    top: int  # rows flagged: the most suspect `share` of each list
    hits: int  # canaries among them
    expected: float  # by chance
    p_value: float  # one-sided: this many hits or more by chance
    mean_rank: float  # canaries' mean percentile of suspicion (0.5 by chance)
    rank_z: float

    def __str__(self) -> str:
        return (
            f"{self.hits} of {self.canaries} canaries among the {self.top} most suspect of "
            f"{self.rows} rows (chance: {self.expected:.1f}, p = {self.p_value:.2g}); "
            f"canaries' mean percentile of suspicion {self.mean_rank:.3f} (z = {self.rank_z:+.1f})"
        )


def binomial_tail(n: int, p: float, k: int) -> float:
    """The chance of `k` or more hits in `n` tries of chance `p` each."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def detect(
    lists: Sequence[tuple[Sequence[dict], set[int]]],
    share: float = 0.1,
    score: Callable[[Sequence[dict]], list[float]] = rarity,
) -> Figures:
    """Run a detector over `lists` (each: its rows, and the indexes of its canaries):
    `score` each row (the higher, the more suspect), flag the top `share` of each list."""
    rows = canaries = top = hits = 0
    percentiles = []
    for list_rows, planted in lists:
        scores = score(list_rows)
        order = sorted(range(len(list_rows)), key=lambda i: scores[i], reverse=True)
        k = max(1, round(share * len(list_rows)))
        flagged = set(order[:k])
        rows += len(list_rows)
        canaries += len(planted)
        top += k
        hits += len(flagged & planted)
        rank = {i: r for r, i in enumerate(order)}
        n = len(list_rows)
        # 1 for the rarest row, 0 for the most ordinary; ties broken by position.
        percentiles += [1 - (rank[i] + 0.5) / n for i in planted]
    expected = canaries * top / rows
    mean = sum(percentiles) / len(percentiles)
    z = (mean - 0.5) / math.sqrt(1 / 12 / len(percentiles))
    return Figures(
        rows=rows,
        canaries=canaries,
        top=top,
        hits=hits,
        expected=expected,
        p_value=binomial_tail(canaries, top / rows, hits),
        mean_rank=mean,
        rank_z=z,
    )


def two_sided_p(z: float) -> float:
    return 2 * (1 - NormalDist().cdf(abs(z)))
