"""Names for synthetic people from japanese-personal-name-dataset: surnames weighted by how
many people bear them, given names by sex, each with its reading so that the kana column
always matches the kanji. The dataset gives the names; the caller's `random.Random` does
the picking, so a seed gives the same people whatever the package's own generator does.
"""

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import jaconv
import japanese_personal_name_dataset as dataset


@dataclass(frozen=True)
class NamePool:
    """(kanji, katakana reading) pairs and their cumulative weights."""

    names: tuple[tuple[str, str], ...]
    cum_weights: tuple[float, ...]

    def pick(self, rng: random.Random) -> tuple[str, str]:
        return rng.choices(self.names, cum_weights=self.cum_weights)[0]


def _fits_cp932(text: str) -> bool:
    # Most lists arrive in CP932; a name it cannot hold would be an external character
    # (外字), which a plain file cannot carry.
    try:
        text.encode("cp932")
    except UnicodeEncodeError:
        return False
    return True


def _pool(weighted: Iterable[tuple[tuple[str, str], float]]) -> NamePool:
    names, weights = zip(*((n, w) for n, w in weighted if _fits_cp932(n[0])), strict=True)
    return NamePool(names, tuple(itertools.accumulate(weights)))


@cache
def surnames() -> NamePool:
    return _pool(
        ((entry["kanji"], jaconv.hira2kata(entry["reading"])), entry["count"])
        for entry in dataset.get_last_names()
    )


@cache
def given_names(sex: str) -> NamePool:
    """Given names for sex "1" (male) or "2" (female), from the dataset's curated set."""
    male, female = dataset.load_dataset("opti")
    entries = male if sex == "1" else female
    # The dataset has no frequencies for given names, and its spellings of one reading run
    # from the everyday (和子) to the rare (佳珠子). Weighting a spelling by how common its
    # characters are across all the names keeps rare spellings rare.
    char_counts = Counter(c for entry in entries.values() for k in entry["kanji"] for c in k)
    top = max(char_counts.values())
    weighted = []
    for reading, entry in entries.items():
        # People aged 40–74 in 2015–2021 were born in 1941–1981, when most girls' names
        # ended in 子.
        reading_weight = 4.0 if sex == "2" and reading.endswith("こ") else 1.0
        spellings = {k: math.prod(char_counts[c] / top for c in k) for k in entry["kanji"]}
        total = sum(spellings.values())
        kana = jaconv.hira2kata(reading)
        weighted.extend(((k, kana), reading_weight * w / total) for k, w in spellings.items())
    return _pool(weighted)
