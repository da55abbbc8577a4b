"""Importing the seed's whole history of lists (483,468 rows at scale 1.0) through the
real pipeline, against the same pipeline without protection — read, normalise, validate,
insert into a scratch table, no encryption and no blind indexes — measured in one run.

    .venv/bin/python bench/intake.py [--scale 1.0] [--seed 1] [--no-postgres] [--repeat N]

Prints one JSON line: rows/s, wall time and peak RSS of each, the ratio (the price of
protection), and how long the importer waited on the custodian (`custodian`: each list's
key pair, taken from the custodian's pool of key pairs made ahead, `ONBOARDING_POOL`,
full when the import starts; and its canaries registered). Goals (issues 5 and 19, SQLite):
<= 60 s wall, ratio <= 1.5, peak RSS <= 500 MB, with the custodian in the path. Each
database run is a child process with a custodian process of its own
(bench/common.py), so its peak RSS is its own and every list's key pair is made anew;
the files are written once beforehand (not timed).
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
from common import custodian_waits, machine, run_child, setup_child_store, setup_parent

# The seed's history is 106 lists imported at once: an onboarding, before which the
# security officer sets the custodian's key pool (custody.json `key_pool`) to at least
# the number of lists and lets it fill (docs/operations.md).
ONBOARDING_POOL = 128


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _children_peak_rss_mb() -> list[float]:
    """Peak RSS of each live child process (the sealing workers)."""
    peaks = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid():
                status = (stat.parent / "status").read_text()
                peaks.append(int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError, ValueError):
            continue
    return [round(p, 1) for p in peaks]


def _cpu_s() -> float:
    """User and system time of this process and its (finished) workers."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def _manifest(directory: Path) -> list[dict[str, str]]:
    with (directory / "manifest.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def plain_writer():  # type: ignore[no-untyped-def]
    """The baseline's writer: the same pipeline up to the storing, which puts the fields
    in the clear into a scratch table (no sealing, no blind indexes). Duplicates are found
    by a plain matching key, through one index, as a plaintext system would."""
    from django.db import connection

    from yobikake.intake import sealing
    from yobikake.intake.writer import Prepared, Writer, insert_statement

    columns = (
        "target_list_id", "insurer_id", "row_number", "sex", "age", "name_kanji", "name_kana",
        "birth_date", "phone", "postal_code", "address", "insured_number", "identity",
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE bench_plain ({', '.join(f'{c} text' for c in columns)})")
        cursor.execute("CREATE INDEX bench_plain_identity ON bench_plain (insurer_id, identity)")
    insert = insert_statement("bench_plain", columns)

    class PlainWriter(Writer):
        def __init__(self, target_list):  # type: ignore[no-untyped-def]
            super().__init__(target_list)
            self._ready = []

        def submit(self, people):  # type: ignore[no-untyped-def]
            tl, batch = self.target_list, []
            for row, p in people:
                age = p.age_on(self.year_end)
                kind, parts = sealing.identity(p, age)
                identity = "\x1f".join((kind, *parts))
                birth = p.birth_date.isoformat() if p.birth_date else ""
                values = (
                    tl.pk, tl.insurer_id, row, p.sex, age, p.name_kanji, p.name_kana, birth,
                    p.phone, p.postal_code, p.address, p.insured_number, identity,
                )  # fmt: skip
                batch.append(Prepared(row, identity, p.sex, age, values))
            self._ready.append(batch)

        def prepared(self, *, everything=False):  # type: ignore[no-untyped-def]
            ready, self._ready = self._ready, []
            return ready

        def _find(self, identities):  # type: ignore[no-untyped-def]
            others = self._same_year().exclude(pk=self.target_list.pk)
            lists = [str(pk) for pk in others.values_list("pk", flat=True)]
            if not lists:
                return set()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT identity FROM bench_plain WHERE insurer_id = %s "
                    f"AND identity IN ({', '.join(['%s'] * len(identities))}) "
                    f"AND target_list_id IN ({', '.join(['%s'] * len(lists))})",
                    [str(self.target_list.insurer_id), *identities, *lists],
                )
                return {row[0] for row in cursor.fetchall()}

        def _insert(self, rows):  # type: ignore[no-untyped-def]
            with connection.cursor() as cursor:
                cursor.executemany(insert, rows)

    return PlainWriter


def import_all(directory: Path, writer_class=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Every file of the manifest through the importer (`services.run_import`)."""
    from yobikake.intake import sealing, services
    from yobikake.intake.models import ListImport
    from yobikake.tenancy.models import Insurer

    extra = {"writer_class": writer_class} if writer_class else {}
    rows = accepted = 0
    start = time.perf_counter()
    cpu = _cpu_s()
    with custodian_waits() as waits:
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
            result = services.run_import(list_import, path, **extra)
            rows += result.rows_submitted
            accepted += result.rows_accepted
    workers_rss = _children_peak_rss_mb()
    sealing.shutdown()  # so that the workers' time is counted
    wall = time.perf_counter() - start
    return {
        "rows": rows,
        "rows_accepted": accepted,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "cpu_s": round(_cpu_s() - cpu, 1),
        "workers_peak_rss_mb": workers_rss,
        "custodian": dict(waits),
    }


def child(directory: str, which: str) -> dict[str, float]:
    setup_child_store()
    result = import_all(Path(directory), plain_writer() if which == "plain" else None)
    result["peak_rss_mb"] = _peak_rss_mb()
    # The importer and its sealing worker (and multiprocessing's resource tracker).
    result["peak_rss_total_mb"] = round(
        result["peak_rss_mb"] + sum(result["workers_peak_rss_mb"]), 1
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="pairs of runs (baseline, then protected) per database; the median pair is shown",
    )
    parser.add_argument("--child", nargs=2, metavar=("DIR", "WHICH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    setup_parent()
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
            # Each pair runs back to back: the machine's speed drifts by more than the
            # margin to the goal over minutes, so each ratio compares neighbours.
            pairs = [
                _pair(
                    run_child(__file__, backend, [out, "plain"]),
                    run_child(__file__, backend, [out, "ours"], key_pool=ONBOARDING_POOL),
                )
                for _ in range(args.repeat)
            ]
            ranked = sorted(pairs, key=lambda pair: pair["ratio_wall"])
            result[backend] = ranked[len(ranked) // 2]
            if args.repeat > 1:
                result[backend]["ratio_wall_runs"] = [pair["ratio_wall"] for pair in pairs]
                result[backend]["protected_wall_s_runs"] = [
                    pair["protected"]["wall_s"] for pair in pairs
                ]
    print(json.dumps(result))


def _pair(plain: dict[str, object], ours: dict[str, object]) -> dict[str, object]:
    return {
        "protected": ours,
        "plain_baseline": plain,
        "ratio_wall": round(float(ours["wall_s"]) / float(plain["wall_s"]), 2),  # type: ignore[arg-type]
        # The protection's whole cost, whichever core it ran on, the custodian's included.
        "ratio_cpu": round(_cpu_with_custodian(ours) / _cpu_with_custodian(plain), 2),
    }


def _cpu_with_custodian(run: dict[str, object]) -> float:
    return float(run["cpu_s"]) + float(run["custodian_cpu_s"])  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
