"""The seed's table: Gifu's 27 insurers, the fiscal years each took part in, and the total
list rows each sent (483,468 in all). Copied into the package as data/gifu_participation.csv.

The insurer numbers are synthetic (prefecture 21, a running number, a valid check digit):
the seed does not give the real ones.
"""

import csv
from dataclasses import dataclass
from importlib.resources import files

from yobikake.jp.insurer_numbers import with_check_digit

FISCAL_YEARS = (2015, 2016, 2017, 2018, 2019, 2021)
GIFU_PREFECTURE_CODE = "21"


@dataclass(frozen=True)
class SeedInsurer:
    no: int
    name: str
    fiscal_years: tuple[int, ...]
    lists_submitted_total: int

    @property
    def is_nhi_association(self) -> bool:
        return self.name.endswith("国保")

    @property
    def synthetic_number(self) -> str:
        # NHI associations get insurer codes from 300 up, municipalities their row number.
        code = 300 + self.no if self.is_nhi_association else self.no
        return with_check_digit(f"{GIFU_PREFECTURE_CODE}{code:03d}")


def seed_insurers() -> list[SeedInsurer]:
    text = files("yobikake.synth").joinpath("data/gifu_participation.csv").read_text("utf-8")
    return [
        SeedInsurer(
            no=int(row["no"]),
            name=row["insurer_name"],
            fiscal_years=tuple(y for y in FISCAL_YEARS if row[f"fy{y}"] == "1"),
            lists_submitted_total=int(row["lists_submitted_total"]),
        )
        for row in csv.DictReader(text.splitlines())
    ]
