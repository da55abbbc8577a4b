"""List files for the import tests, written from synthetic people (never real ones):
well-formed in the forms municipal systems use, and broken in the ways they break."""

import csv
import io
from datetime import date
from pathlib import Path

from tests.pii import LOADED_PEOPLE
from yobikake.synth.people import Person, synthetic_people

HEADERS = ["被保険者番号", "氏名", "カナ氏名", "性別", "生年月日", "郵便番号", "住所", "電話番号"]


def wareki(day: date) -> str:
    if day >= date(1989, 1, 8):
        return f"平成{day.year - 1988}年{day.month}月{day.day}日"
    return f"昭和{day.year - 1925}年{day.month}月{day.day}日"


def row_of(person: Person) -> list[str]:
    return [
        person.insured_number,
        person.name_kanji,
        person.name_kana,
        "男" if person.sex == "1" else "女",
        wareki(person.birth_date) if person.birth_date else "",
        person.postal_code,
        person.address,
        person.phone,
    ]


def people(count: int = 20, seed: int = 11, fiscal_year: int = 2022) -> list[Person]:
    found = synthetic_people(count, seed=seed, fiscal_year=fiscal_year)
    LOADED_PEOPLE.extend(found)  # no audit event may hold any of them
    return found


def csv_bytes(
    rows: list[list[str]], headers: list[str] = HEADERS, encoding: str = "cp932"
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
