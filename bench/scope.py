"""Leak scoping at the seed's scale: the full synthetic history (483,468 rows at scale
1.0, canaries planted) imported through the real pipeline, a 180,000-row leaked file
made from it (`synth leak`: re-typed rows, one typo in some, strangers, the canaries of
the lists it draws from), scoped by blind indexes — and, in the same run, the same
data linked by Splink (DuckDB) on its plaintext.

    .venv/bin/python bench/scope.py [--scale 1.0] [--rows 180000] [--seed 1] [--no-splink]

Prints one JSON line. Goals (issue 7, SQLite): scoping <= 60 s;
recall >= 99% on rows that differ only in formatting, >= 90% on rows with one typo;
precision >= 99.9%; every canary in the file attributed to its list.

Recall counts a leaked row found when a person it names at the certain or probable tier
is the person it was made from (the same person on another year's list counts: it is
them). Precision is over every (row, person) named at those tiers. Truth comes from
the leak's truth file and, for "the same person", from the stored rows opened in bulk by
the run's custodian (not timed), a custodian of synthetic organisations
(bench/common.py): the only way anything opens them in bulk, and the way `synth leak
--from-store` makes the leak.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, run_child, setup_child_store, setup_parent


def _people():  # type: ignore[no-untyped-def]
    """Every stored target opened (as Splink gets them) and the person it is: the same
    insurer, kana and birth date — or insured number, on lists that give only an age."""
    import splink_baseline

    from yobikake.intake.models import TargetList
    from yobikake.intake.sealing import ROWS_PER_LIST
    from yobikake.jp import normalize
    from yobikake.synth.leak import open_targets

    insurer_of = dict(TargetList.objects.values_list("pk", "insurer_id"))
    store, person_of = [], {}
    for target_id, person in open_targets():
        store.append(splink_baseline.store_row(target_id, person))
        who = person.birth_date.isoformat() if person.birth_date else person.insured_number
        insurer = insurer_of[target_id // ROWS_PER_LIST]
        person_of[target_id] = (insurer, normalize.kana_key(person.name_kana), who)
    return store, person_of


def _truth(path: Path) -> dict[int, dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return {int(r["leak_row"]): r for r in csv.DictReader(f)}


def _score(named: dict[int, set[int]], truth, person_of) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Recall per noise class and precision of `named` (leak row → target ids)."""
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    right = wrong = 0
    for row, t in truth.items():
        source = int(t["target_id"]) if t["target_id"] else None
        who = person_of.get(source) if source else None
        targets = named.get(row, set())
        for target in targets:
            if who is not None and person_of.get(target) == who:
                right += 1
            else:
                wrong += 1
        if source is not None and t.get("canary") != "1":
            counts = found[t["noise"]]
            counts[1] += 1
            counts[0] += any(person_of.get(target) == who for target in targets)
    return {
        "recall": {k: round(n / d, 4) for k, (n, d) in sorted(found.items())},
        "rows_by_noise": {k: d for k, (_n, d) in sorted(found.items())},
        "precision": round(right / (right + wrong), 5) if right + wrong else None,
        "pairs": right + wrong,
    }


def child(directory: str, rows: str, seed: str, splink: str) -> dict[str, object]:
    setup_child_store()
    from django.core.management import call_command
    from intake import import_all  # bench/intake.py

    from yobikake.incidents import canaries, services
    from yobikake.incidents.models import Match

    imported = import_all(Path(directory))
    out = Path(directory) / "leak"
    out.mkdir()
    leak, truth_path = out / "leak.csv", out / "truth.csv"
    started = time.perf_counter()
    call_command(
        "synth", "leak", "--from-store", "--rows", rows, "--seed", seed,
        "--out", str(leak), "--truth", str(truth_path), stdout=open(os.devnull, "w"),  # noqa: SIM115
    )  # fmt: skip
    leak_s = time.perf_counter() - started
    truth = _truth(truth_path)

    # Ours, timed from the file to the incident recorded (matches stored, events written).
    canaries.forget()
    started = time.perf_counter()
    incident = services.open_incident(
        actor=None, title="bench", aware_on=__import__("datetime").date.today()
    )
    incident = services.run_scoping(incident, leak)
    ours_s = time.perf_counter() - started
    named: dict[int, set[int]] = defaultdict(set)
    canary_lists = {}
    for row, target, list_id, tier, canary in Match.objects.filter(incident=incident).values_list(
        "leak_row", "target_id", "target_list_id", "tier", "canary"
    ):
        if canary:
            canary_lists[row] = list_id
        elif tier != Match.Tier.POSSIBLE:
            named[row].add(target)
    store, person_of = _people()
    result: dict[str, object] = {
        "stored_rows": imported["rows_accepted"],
        "import_s": imported["wall_s"],
        "leak_rows": len(truth),
        "leak_make_s": round(leak_s, 1),
        "ours": {
            "seconds": round(ours_s, 1),
            "scoping_s": incident.seconds,
            **_score(named, truth, person_of),
        },
    }
    planted = {r: int(t["target_id"]) for r, t in truth.items() if t.get("canary") == "1"}
    result["canaries"] = {
        "in_file": len(planted),
        "attributed_to_their_list": sum(
            canary_lists.get(r) == target // 10_000_000 for r, target in planted.items()
        ),
    }
    if splink == "yes":
        result["splink"] = _splink(leak, truth, store, person_of)
    return result


def _splink(leak: Path, truth, store, person_of) -> dict[str, object]:  # type: ignore[no-untyped-def]
    import splink_baseline

    seconds, links = splink_baseline.link(store, splink_baseline.read_leak(leak))
    named: dict[int, set[int]] = defaultdict(set)
    for row, target, _probability in links:
        named[row].add(target)
    return {"seconds": round(seconds, 1), **_score(named, truth, person_of)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=180_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    setup_parent()
    from yobikake.synth.lists import write_lists

    result: dict[str, object] = {
        "bench": "scope",
        **machine(),
        "scale": args.scale,
        "goals": {
            "seconds": "<= 60",
            "recall_format": ">= 0.99",
            "recall_typo": ">= 0.90",
            "precision": ">= 0.999",
            "canaries": "all attributed",
        },
    }
    with tempfile.TemporaryDirectory() as out:
        write_lists(Path(out), scale=args.scale, seed=args.seed)
        splink = "no" if args.no_splink else "yes"
        result.update(run_child(__file__, "sqlite", [out, str(args.rows), str(args.seed), splink]))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
