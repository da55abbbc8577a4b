"""Synthetic insured people, deterministic from a seed: for tests, the demo and the
benchmarks. They describe no one. The intake issue widens the name and address pools
(japanese-personal-name-dataset, Japan Post data) and adds the file writers; the shape
of `Person` stays.

Landlines are 058-0xx-xxxx (a local exchange starting with 0, which no real exchange
does); mobiles are only well-formed (no mobile block is both valid and unassigned).
Synthetic numbers are never to be dialled.
"""

import random
from dataclasses import dataclass
from datetime import date

SURNAMES = (
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("清水", "シミズ"),
    ("森", "モリ"),
    ("長谷川", "ハセガワ"),
    ("後藤", "ゴトウ"),
)
GIVEN_NAMES = {
    "1": (
        ("一郎", "イチロウ"),
        ("健二", "ケンジ"),
        ("誠", "マコト"),
        ("浩", "ヒロシ"),
        ("茂", "シゲル"),
        ("修", "オサム"),
        ("隆", "タカシ"),
        ("和夫", "カズオ"),
        ("博之", "ヒロユキ"),
        ("正樹", "マサキ"),
    ),
    "2": (
        ("花子", "ハナコ"),
        ("和子", "カズコ"),
        ("幸子", "サチコ"),
        ("恵子", "ケイコ"),
        ("洋子", "ヨウコ"),
        ("久美子", "クミコ"),
        ("由美", "ユミ"),
        ("直美", "ナオミ"),
        ("裕子", "ユウコ"),
        ("真由美", "マユミ"),
    ),
}
TOWNS = ("本町", "元町", "栄町", "若葉町", "旭町", "緑町", "桜町", "中央")


@dataclass(frozen=True)
class Person:
    """One insured person as an insurer's list states them (after validation: display
    forms). `sex` is the national code ("1" male, "2" female); `phone` may be empty (to
    be researched); `age` is the age at the fiscal year's end when no birth date came."""

    name_kanji: str
    name_kana: str
    sex: str
    birth_date: date | None  # some lists give only the age at the fiscal year's end
    phone: str
    postal_code: str
    address: str
    insured_number: str
    age: int | None = None

    def age_on(self, day: date) -> int:
        if self.birth_date is None:
            if self.age is None:
                raise ValueError("a person needs a birth date or an age")
            return self.age
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - before_birthday


def synthetic_people(
    count: int,
    *,
    seed: int,
    fiscal_year: int,
    city: str = "岐阜県テスト市",
    phone_share: float = 0.8,
) -> list[Person]:
    """`count` people aged 40–74 at the end of `fiscal_year` (31 March following)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by design
    year_end = date(fiscal_year + 1, 3, 31)
    people = []
    for n in range(count):
        sex = rng.choice("12")
        surname, surname_kana = rng.choice(SURNAMES)
        given, given_kana = rng.choice(GIVEN_NAMES[sex])
        age = rng.randint(40, 74)
        birth = date(year_end.year - age - 1, rng.randint(4, 12), rng.randint(1, 28))
        if rng.random() < phone_share:
            phone = (
                f"090-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"
                if rng.random() < 0.5
                else f"058-0{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}"
            )
        else:
            phone = ""
        town = rng.choice(TOWNS)
        address = f"{city}{town}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        people.append(
            Person(
                name_kanji=f"{surname} {given}",
                name_kana=f"{surname_kana} {given_kana}",
                sex=sex,
                birth_date=birth,
                phone=phone,
                postal_code=f"50{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}",
                address=address,
                insured_number=f"岐{seed % 100:02d}-{n:07d}",
            )
        )
    return people
