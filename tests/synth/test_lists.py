import csv
import random
import re
import unicodedata
from collections import Counter, defaultdict
from datetime import date, datetime
from io import StringIO

import openpyxl
import phonenumbers
import pytest
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.normalize import insured_number_key, kana_key, name_key, phone_key
from yobikake.jp.wareki import ERAS, fiscal_year_end
from yobikake.synth import lists
from yobikake.synth.areas import all_towns, towns_of
from yobikake.synth.gifu import FISCAL_YEARS, seed_insurers
from yobikake.synth.lists import (
    HEADER_SYNONYMS,
    Column,
    Defect,
    generate_lists,
    plan_lists,
    split_rows,
    write_lists,
)

SMALL = 0.02
SEED = 2026


def read_list(path):
    """A written list back as (encoding, header, rows), the way an importer meets it."""
    if path.suffix == ".xlsx":
        workbook = openpyxl.load_workbook(path, read_only=True)
        header, *rows = [
            ["" if cell is None else cell for cell in row]
            for row in workbook.active.iter_rows(values_only=True)
        ]
        return "xlsx", header, rows
    raw = path.read_bytes()
    for encoding in ("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8", "cp932"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        header, *rows = list(csv.reader(StringIO(text, newline="")))
        return encoding, header, rows
    raise AssertionError(f"{path.name} is in no expected encoding")


ERA_FIRST_YEAR = {era.name: era.starts.year - 1 for era in ERAS} | {
    era.letter: era.starts.year - 1 for era in ERAS
}
DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"),
    re.compile(r"(?P<era>昭和|平成|令和)(?P<ey>\d+|元)年(?P<m>\d+)月(?P<d>\d+)日"),
    re.compile(r"(?P<era>[SHR])(?P<ey>\d+)\.(?P<m>\d+)\.(?P<d>\d+)"),
)


def parse_birth(cell):
    """A birth date as written in any of the forms the lists use; ValueError if none fits
    or the date does not exist."""
    if isinstance(cell, datetime):
        return cell.date()
    for pattern in DATE_PATTERNS:
        if match := pattern.fullmatch(cell):
            parts = match.groupdict()
            if "era" in parts:
                era_year = 1 if parts["ey"] == "元" else int(parts["ey"])
                parts["y"] = ERA_FIRST_YEAR[parts["era"]] + era_year
            return date(int(parts["y"]), int(parts["m"]), int(parts["d"]))
    raise ValueError(cell)


def is_valid_phone(text):
    try:
        number = phonenumbers.parse(unicodedata.normalize("NFKC", text), "JP")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lists")
    manifest = write_lists(out, scale=SMALL, seed=SEED)
    return out, manifest


def test_at_full_scale_each_insurer_and_the_seed_total_are_exact():
    plans = plan_lists(scale=1.0, seed=SEED)
    assert sum(plan.rows for plan in plans) == 483_468
    per_insurer = Counter()
    for plan in plans:
        per_insurer[plan.insurer.name] += plan.rows
    assert per_insurer == {i.name: i.lists_submitted_total for i in seed_insurers()}
    per_year = Counter(plan.fiscal_year for plan in plans)
    assert [per_year[year] for year in FISCAL_YEARS] == [11, 15, 19, 19, 21, 21]


def test_years_share_an_insurer_total_roughly_evenly():
    for insurer_plans in _by_insurer(plan_lists(scale=1.0, seed=SEED)).values():
        mean = sum(plan.rows for plan in insurer_plans) / len(insurer_plans)
        for plan in insurer_plans:
            assert 0.85 / 1.15 - 0.01 < plan.rows / mean < 1.15 / 0.85 + 0.01


def test_a_smaller_scale_rounds_each_insurer_total_and_keeps_a_row_in_every_file():
    for scale in (0.5, 0.01, 0.0001):
        for insurer_plans in _by_insurer(plan_lists(scale=scale, seed=SEED)).values():
            insurer = insurer_plans[0].insurer
            expected = max(round(insurer.lists_submitted_total * scale), len(insurer.fiscal_years))
            assert sum(plan.rows for plan in insurer_plans) == expected
            assert all(plan.rows >= 1 for plan in insurer_plans)


@given(st.integers(1, 10), st.integers(0, 200_000), st.integers())
def test_a_split_adds_up_exactly_with_a_row_for_every_year(parts, extra, seed):
    counts = split_rows(parts + extra, parts, random.Random(seed))
    assert sum(counts) == parts + extra
    assert len(counts) == parts
    assert min(counts) >= 1


def test_a_split_needs_a_row_for_every_year():
    with pytest.raises(ValueError, match="cannot fill"):
        split_rows(2, 3, random.Random(0))


def test_the_xlsx_share_is_the_share_of_files():
    for share in (0.0, 0.1, 0.5, 1.0):
        plans = plan_lists(scale=SMALL, seed=SEED, xlsx_share=share)
        assert sum(plan.xlsx for plan in plans) == round(len(plans) * share)


def test_the_files_and_the_manifest_agree(small_run):
    out, manifest = small_run
    with (out / "manifest.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["file", "insurer_number", "fiscal_year", "rows"]
    assert len(rows) == len(manifest) == 106
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [r["file"] for r in rows] + ["manifest.csv"]
    )
    numbers = {insurer.synthetic_number: insurer for insurer in seed_insurers()}
    encodings = Counter()
    for row in rows:
        stem, suffix = row["file"].split(".")
        assert stem == f"{row['insurer_number']}_{row['fiscal_year']}"
        assert suffix in ("csv", "xlsx")
        assert int(row["fiscal_year"]) in numbers[row["insurer_number"]].fiscal_years
        encoding, header, data = read_list(out / row["file"])
        encodings[encoding] += 1
        assert len(data) == int(row["rows"]) >= 1
        known = {name for names in HEADER_SYNONYMS.values() for name in names}
        assert set(header) <= known and len(header) == 8
    assert sum(int(r["rows"]) for r in rows) == sum(
        max(round(i.lists_submitted_total * SMALL), len(i.fiscal_years)) for i in seed_insurers()
    )
    assert set(encodings) == {"cp932", "utf-8", "utf-8-sig", "xlsx"}
    assert encodings["cp932"] > encodings["utf-8"] > encodings["utf-8-sig"]


def test_every_row_reads_back_as_the_person_generated(small_run):
    out, manifest = small_run
    generated = generate_lists(plan_lists(scale=SMALL, seed=SEED), seed=SEED)
    seen = Counter()
    for manifest_row, made in zip(manifest, generated, strict=True):
        style = made.plan.style
        _, header, rows = read_list(out / manifest_row.file)
        assert header == list(style.headers)
        year_end = fiscal_year_end(made.plan.fiscal_year)
        for entry, row in zip(made.entries, rows, strict=True):
            cell = dict(zip(style.columns, row, strict=True))
            person = entry.person
            seen[entry.defect] += 1
            assert insured_number_key(cell[Column.INSURED_NUMBER]) == insured_number_key(
                person.insured_number
            )
            assert kana_key(cell[Column.KANA]) == kana_key(person.name_kana)
            assert str(cell[Column.SEX]) in {"1": ("1", "男"), "2": ("2", "女")}[person.sex]
            assert entry.address.town.name in cell[Column.ADDRESS]
            postal_digits = re.sub(
                r"\D", "", unicodedata.normalize("NFKC", cell[Column.POSTAL_CODE])
            )
            assert postal_digits == person.postal_code.replace("-", "")
            if entry.defect is Defect.EMPTY_NAME:
                assert cell[Column.NAME] == ""
            else:
                assert name_key(cell[Column.NAME]) == name_key(person.name_kanji)
            if entry.defect is Defect.BAD_PHONE:
                assert not is_valid_phone(cell[Column.PHONE])
            else:
                assert phone_key(cell[Column.PHONE]) == phone_key(person.phone)
            if Column.AGE in cell:
                assert int(cell[Column.AGE]) == person.age_on(year_end)
            elif entry.defect is Defect.IMPOSSIBLE_DATE:
                with pytest.raises(ValueError):
                    parse_birth(cell[Column.BIRTH_DATE])
            else:
                assert parse_birth(cell[Column.BIRTH_DATE]) == person.birth_date
    assert seen[None] > 9000
    assert set(seen) == {None, *Defect}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    def run(seed, name):
        write_lists(tmp_path / name, scale=0.002, seed=seed, xlsx_share=0.3)
        return {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}

    first, again, other = run(1, "a"), run(1, "b"), run(2, "c")
    assert any(name.endswith(".xlsx") for name in first)
    assert first == again
    assert first != other


def test_everyone_on_a_valid_row_is_40_to_74_at_the_fiscal_years_end():
    ages = Counter()
    for made in generate_lists(plan_lists(scale=0.05, seed=SEED), seed=SEED):
        year_end = fiscal_year_end(made.plan.fiscal_year)
        for entry in made.entries:
            age = entry.person.age_on(year_end)
            if entry.defect is Defect.AGE_OUT_OF_RANGE:
                assert not 40 <= age <= 74
            else:
                assert 40 <= age <= 74
                ages[age] += 1
    assert min(ages) == 40 and max(ages) == 74


def test_about_half_of_a_list_comes_back_the_next_time_with_the_same_number_and_birth():
    made_lists = list(generate_lists(plan_lists(scale=0.05, seed=SEED), seed=SEED))
    for insurer_lists in _by_insurer(made_lists, key=lambda m: m.plan.insurer).values():
        known = {}
        previous = set()
        for made in insurer_lists:
            valid = [e.person for e in made.entries if e.defect is None]
            numbers = [e.person.insured_number for e in made.entries]
            assert len(set(numbers)) == len(numbers)
            for person in valid:
                name_birth = (person.name_kanji, person.name_kana, person.sex, person.birth_date)
                assert known.setdefault(person.insured_number, name_birth) == name_birth
                assert re.fullmatch(r"\d{2}-\d{7}", person.insured_number)
            carried = sum(person.insured_number in previous for person in valid)
            if previous and len(valid) >= 200:
                assert 0.45 < carried / len(valid) < 0.55
            previous = {person.insured_number for person in valid}


def test_phones_are_valid_unique_per_household_and_landlines_use_the_towns_area_code():
    with_phone = without = couples = 0
    holders = defaultdict(set)
    for made in generate_lists(plan_lists(scale=0.05, seed=SEED), seed=SEED):
        households = defaultdict(list)
        for entry in made.entries:
            phone = entry.person.phone
            if entry.defect:
                continue
            if not phone:
                without += 1
                continue
            with_phone += 1
            assert is_valid_phone(phone), phone
            digits = phone.replace("-", "")
            if phone.startswith(("090-", "080-", "070-")):
                assert len(digits) == 11
            else:
                assert len(digits) == 10
                assert phone.startswith(entry.address.town.area_code + "-0")
                households[phone].append(entry)
            holders[phone].add(made.plan.insurer.name)
        for members in households.values():
            assert len({(e.person.name_kanji.split()[0], e.person.address) for e in members}) == 1
            assert len({e.person.sex for e in members}) == len(members) <= 2
        couples += sum(len(members) == 2 for members in households.values())
    assert couples > 100
    assert 0.2 < without / (with_phone + without) < 0.3
    assert all(len(insurers) == 1 for insurers in holders.values())


def test_addresses_are_real_towns_of_the_insurers_municipality():
    gifu = set(all_towns())
    for made in generate_lists(plan_lists(scale=0.02, seed=SEED), seed=SEED):
        insurer = made.plan.insurer
        towns = gifu if insurer.is_nhi_association else set(towns_of(insurer.name))
        for entry in made.entries:
            town = entry.address.town
            assert town in towns
            assert entry.person.address.startswith(f"岐阜県{town.municipality}{town.name}")
            assert entry.person.postal_code == f"{town.postal_code[:3]}-{town.postal_code[3:]}"


def test_a_failed_run_leaves_no_half_written_file_under_a_final_name(tmp_path, monkeypatch):
    written = 0
    real_cells = lists._cells

    def failing_cells(entry, plan, rng):
        nonlocal written
        written += 1
        if written == 300:
            raise RuntimeError("killed")
        return real_cells(entry, plan, rng)

    monkeypatch.setattr(lists, "_cells", failing_cells)
    with pytest.raises(RuntimeError):
        write_lists(tmp_path, scale=SMALL, seed=SEED)
    names = {p.name for p in tmp_path.iterdir()}
    planned = [plan.rows for plan in plan_lists(scale=SMALL, seed=SEED)]
    complete = next(n for n in range(len(planned)) if sum(planned[: n + 1]) >= 300)
    assert len(names) == complete
    assert "manifest.csv" not in names
    assert not [name for name in names if name.endswith(".part")]


def test_the_command_writes_the_lists_and_a_summary(tmp_path):
    out = StringIO()
    call_command(
        "synth",
        "lists",
        "--scale",
        "0.001",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "l"),
        stdout=out,
    )
    assert re.fullmatch(
        r"wrote 106 lists \(\d+ CSV, \d+ XLSX\), [\d,]+ rows, to .+ in [\d.]+ s\n", out.getvalue()
    )
    assert (tmp_path / "l" / "manifest.csv").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scale", "0"], "scale"),
        (["--scale", "-0.5"], "scale"),
        (["--scale", "1.5"], "scale"),
        (["--scale", "nan"], "scale"),
        (["--xlsx-share", "1.2"], "XLSX share"),
    ],
)
def test_the_command_refuses_a_scale_or_share_out_of_range(tmp_path, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("synth", "lists", "--out", str(tmp_path / "l"), *arguments)
    assert not (tmp_path / "l").exists()


def test_the_command_refuses_a_non_empty_directory_unless_forced(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "210013_2015.xlsx").write_text("an earlier run's list")
    with pytest.raises(CommandError, match="not empty"):
        call_command("synth", "lists", "--scale", "0.001", "--out", str(tmp_path))
    assert not (tmp_path / "manifest.csv").exists()
    call_command(
        "synth", "lists", "--scale", "0.001", "--out", str(tmp_path), "--force", stdout=StringIO()
    )
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "210013_2015.xlsx").exists()
    assert (tmp_path / "manifest.csv").exists()


def test_the_command_refuses_a_file_as_its_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="not a directory"):
        call_command("synth", "lists", "--scale", "0.001", "--out", str(tmp_path / "file"))


def _by_insurer(items, key=lambda plan: plan.insurer):
    grouped = defaultdict(list)
    for item in items:
        grouped[key(item).no].append(item)
    return grouped
