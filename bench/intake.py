"""Importing the seed's whole history of lists (483,468 rows at scale 1.0) through the
real pipeline, against the same pipeline without protection — read, normalise, validate,
insert into a scratch table, no encryption and no blind indexes — measured in one run.

    .venv/bin/python bench/intake.py [--scale 1.0] [--seed 1] [--no-postgres]

Prints one JSON line: rows/s, wall time and peak RSS of each, and the ratio (the price
of protection). Goals (issue 5, SQLite and the local keyring): <= 60 s wall,
ratio <= 1.5, peak RSS <= 500 MB. Each database run is a child process, so its peak RSS
is its own; the files are written once beforehand (not timed).
"""

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, run_child


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _manifest(directory: Path) -> list[dict[str, str]]:
    with (directory / "manifest.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plain_import(directory: Path) -> dict[str, float]:
    """The baseline: the same reading, normalising and checking, rows inserted as plain
    text into a scratch table in one transaction per file."""
    from datetime import date

    from django.db import connection, transaction

    from yobikake.intake.reading import map_headers, open_sheet
    from yobikake.intake.validation import RowChecker

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_plain (row_number integer, name_kanji text, name_kana text, "
            "sex text, birth_date text, age integer, phone text, postal_code text, "
            "address text, insured_number text)"
        )
    insert = "INSERT INTO bench_plain VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    rows = 0
    start = time.perf_counter()
    for entry in _manifest(directory):
        sheet = open_sheet(directory / entry["file"])
        checker = RowChecker(map_headers(sheet.headers), int(entry["fiscal_year"]))
        year_end = date(int(entry["fiscal_year"]) + 1, 3, 31)
        with transaction.atomic(), connection.cursor() as cursor:
            batch = []
            for number, cells in sheet.rows:
                rows += 1
                person, _ = checker.check(number, cells)
                if person is None:
                    continue
                batch.append(
                    (
                        number,
                        person.name_kanji,
                        person.name_kana,
                        person.sex,
                        person.birth_date.isoformat() if person.birth_date else "",
                        person.age_on(year_end),
                        person.phone,
                        person.postal_code,
                        person.address,
                        person.insured_number,
                    )
                )
                if len(batch) >= 2000:
                    cursor.executemany(insert, batch)
                    batch.clear()
            if batch:
                cursor.executemany(insert, batch)
    wall = time.perf_counter() - start
    return {"rows": rows, "wall_s": round(wall, 2), "rows_per_s": round(rows / wall)}


def protected_import(directory: Path) -> dict[str, float]:
    from yobikake.intake import services
    from yobikake.intake.models import ListImport
    from yobikake.tenancy.models import Insurer

    rows = accepted = 0
    start = time.perf_counter()
    for entry in _manifest(directory):
        path = directory / entry["file"]
        insurer = Insurer.objects.get(number=entry["insurer_number"])
        list_import = services.start_import(
            actor=None,
            insurer=insurer,
            fiscal_year=int(entry["fiscal_year"]),
            file_name=path.name,
            file_sha256=services.file_sha256(path),
            policy=ListImport.Policy.EXCLUDE,
        )
        result = services.run_import(list_import, path)
        rows += result.rows_submitted
        accepted += result.rows_accepted
    wall = time.perf_counter() - start
    return {
        "rows": rows,
        "rows_accepted": accepted,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
    }


def child(directory: str, which: str) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if which == "plain":
        result = plain_import(Path(directory))
    else:
        call_command("demo", "--no-serve", "--no-lists", stdout=open(os.devnull, "w"))  # noqa: SIM115
        result = protected_import(Path(directory))
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "WHICH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    os.environ.setdefault("YOBIKAKE_HOME", tempfile.mkdtemp(prefix="yobikake-bench-"))
    django.setup()
    from yobikake.synth.lists import write_lists

    result: dict[str, object] = {
        "bench": "intake",
        **machine(),
        "scale": args.scale,
        "goals": {"sqlite_wall_s": "<= 60", "ratio": "<= 1.5", "peak_rss_mb": "<= 500"},
    }
    with tempfile.TemporaryDirectory() as out:
        write_lists(Path(out), scale=args.scale, seed=args.seed)
        for backend in ("sqlite",) + (() if args.no_postgres else ("postgresql",)):
            plain = run_child(__file__, backend, [out, "plain"])
            ours = run_child(__file__, backend, [out, "ours"])
            result[backend] = {
                "protected": ours,
                "plain_baseline": plain,
                "ratio_wall": round(float(ours["wall_s"]) / float(plain["wall_s"]), 2),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
