"""The baseline for leak scoping: Splink (probabilistic record linkage, Fellegi–Sunter, on
DuckDB) linking a leaked file to the PLAINTEXT of the store. Yobikake scopes a leak by
blind indexes without opening anyone; this is what a team holding everything in the
clear would run instead. Both sides are normalised with `yobikake.jp.normalize`, the
keys Yobikake's blind indexes are computed over, so neither method reads better data.

    link(store, leak) -> (seconds, [(leak_row, target_id, match_probability)])

Run alone, it checks itself on the current database (YOBIKAKE_HOME / DATABASE_URL; a
test or benchmark installation: see `yobikake synth leak`), printing one JSON line:

    .venv/bin/python bench/splink_baseline.py [--rows 2000] [--seed 1]

The model: link_only between store and leak; candidate pairs from five blocking rules
(the same birth date, phone, kana, name or address key); name and kana compared by
Jaro–Winkler with term frequencies, birth date, phone and address by Levenshtein (a
one-digit typo is one edit), postal code exactly; u estimated by random sampling, m by
expectation maximisation on pairs with the same birth date, then on pairs with the same
name and address; the prior from deterministic rules. Its false links are mostly
household members, who share a phone and an address (Fellegi–Sunter takes agreements as
independent evidence). At the seed's full size (482,501 stored, 197,604 leaked rows, 2
cores) it took 46 s and 3 GB.
"""

import logging
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from yobikake.jp import normalize
from yobikake.jp.dates import InvalidDate, parse_date
from yobikake.synth.people import Person

FIELDS = ("name", "kana", "birth", "phone", "address", "postal")
THRESHOLD = 0.9
# Pairs sampled to estimate u: about a second per million on two cores.
U_MAX_PAIRS = 5e6


def normalised(
    *,
    name: str,
    kana: str,
    birth: date | str | None,
    phone: str,
    address: str,
    postal: str,
) -> dict[str, str | None]:
    """A person's fields as `link` takes them: the matching keys of `yobikake.jp.normalize`,
    None where nothing usable is left."""
    if isinstance(birth, str):
        try:
            birth = parse_date(birth) if birth.strip() else None
        except InvalidDate:
            birth = None
    postal_digits = "".join(c for c in normalize.fold(postal) if c.isdigit())
    values = {
        "name": normalize.name_key(name),
        "kana": normalize.kana_key(kana),
        "birth": normalize.birth_key(birth) if birth else "",
        "phone": normalize.phone_key(phone),
        "address": normalize.address_key(address),
        "postal": postal_digits if len(postal_digits) == 7 else "",
    }
    return {field: value or None for field, value in values.items()}


def store_row(target_id: int, person: Person) -> dict[str, object]:
    """A stored person, as `yobikake.synth.leak.open_targets` gives them."""
    return {
        "id": target_id,
        **normalised(
            name=person.name_kanji,
            kana=person.name_kana,
            birth=person.birth_date,
            phone=person.phone,
            address=person.address,
            postal=person.postal_code,
        ),
    }


def leak_row(number: int, cells: Mapping[Any, str]) -> dict[str, object]:
    """A row of a leaked file (cells by column, as `yobikake.synth.leak.read_leak` gives
    them; a missing column is an empty cell). `number` is its leak row (the header is 1)."""
    return {
        "id": number,
        **normalised(
            name=cells.get("name", ""),
            kana=cells.get("kana", ""),
            birth=cells.get("birth_date", ""),
            phone=cells.get("phone", ""),
            address=cells.get("address", ""),
            postal=cells.get("postal_code", ""),
        ),
    }


def read_leak(path: Path) -> list[dict[str, object]]:
    """A leaked file written by `yobikake synth leak`, as `link` takes its rows."""
    from yobikake.synth import leak

    return [leak_row(number, cells) for number, cells in enumerate(leak.read_leak(path), 2)]


def _table(rows: list[dict[str, object]]) -> pa.Table:
    schema = pa.schema([("id", pa.int64()), *((field, pa.string()) for field in FIELDS)])
    # An empty value is a missing one: Splink's null level, not an agreement on "".
    columns = {"id": [row["id"] for row in rows]}
    columns |= {field: [row.get(field) or None for row in rows] for field in FIELDS}
    return pa.Table.from_pydict(columns, schema=schema)


def link(
    store: list[dict[str, object]], leak: list[dict[str, object]]
) -> tuple[float, list[tuple[int, int, float]]]:
    """store rows: {"id": target id, "name": kanji, "kana": katakana, "birth": "YYYY-MM-DD",
    "phone": digits, "address": normalised address, "postal": 7 digits}
    leak rows: {"id": leak_row, same fields, normalised the same way (missing = None)}
    Returns (seconds, [(leak_row, target_id, match_probability)]) for predicted links
    above 0.9. The seconds are Splink's alone: loading, training and predicting."""
    started = time.perf_counter()
    db_api = DuckDBAPI()
    tables = [
        db_api.register(_table(store), dataset_display_name="store"),
        db_api.register(_table(leak), dataset_display_name="leak"),
    ]
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="id",
        blocking_rules_to_generate_predictions=[
            block_on("birth"),
            block_on("phone"),
            block_on("kana"),
            block_on("name"),
            block_on("address"),
        ],
        comparisons=[
            # Common names are common: an exact match on one says less (term frequencies).
            cl.JaroWinklerAtThresholds("name", [0.92, 0.8]).configure(
                term_frequency_adjustments=True
            ),
            cl.JaroWinklerAtThresholds("kana", [0.92, 0.8]).configure(
                term_frequency_adjustments=True
            ),
            cl.LevenshteinAtThresholds("birth", 1),
            cl.LevenshteinAtThresholds("phone", 1),
            # Not Jaro–Winkler: every address starts 岐阜県, which its prefix bonus rewards.
            cl.LevenshteinAtThresholds("address", [1, 3]),
            cl.ExactMatch("postal"),
        ],
        retain_matching_columns=False,
    )
    linker = Linker(tables, settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("kana", "birth"), block_on("phone"), block_on("name", "address")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=1)
    # Each session leaves the comparisons it blocks on untrained; the other trains them.
    # About 50,000 records sampled a side keeps each session to seconds.
    sample = min(1.0, 50_000 / max(1, len(store)))
    for rule in (block_on("birth"), block_on("name", "address")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, record_sample_proportion=sample
        )
    predicted = linker.inference.predict(threshold_match_probability=THRESHOLD)
    links = []
    for row in predicted.as_record_list():
        if row["source_dataset_l"] == "leak":
            pair = (row["id_l"], row["id_r"])
        else:
            pair = (row["id_r"], row["id_l"])
        links.append((int(pair[0]), int(pair[1]), float(row["match_probability"])))
    return time.perf_counter() - started, links


def _check_on_current_database(rows: int, seed: int) -> dict[str, object]:
    """Make a leak of `rows` stored people from the current database, link it with
    Splink, and score the links against the truth. A link is right when it names the
    leaked row's source or another list's row of the same person (the same insurer and
    insured number): about half of each list is carried over from the year before."""
    import tempfile

    import django

    django.setup()
    from yobikake.intake.models import Target
    from yobikake.synth import leak

    options = leak.LeakOptions(
        rows=rows,
        noise=leak.DEFAULT_NOISE,
        unrelated=0.1,
        canaries=True,
        columns=leak.DEFAULT_COLUMNS,
        seed=seed,
    )
    made = leak.leak_from_store(options)
    with tempfile.TemporaryDirectory() as scratch:
        out, truth_path = Path(scratch, "leak.csv"), Path(scratch, "truth.csv")
        leak.write_leak(made, out, truth_path)
        leak_rows = read_leak(out)
        truth = leak.read_truth(truth_path)
    people = list(leak.open_targets())
    insurers = dict(Target.objects.values_list("id", "insurer_id").iterator())
    person_of = {
        pk: (insurers[pk], p.insured_number) if p.insured_number else ("target", pk)
        for pk, p in people
    }
    seconds, links = link([store_row(pk, p) for pk, p in people], leak_rows)
    source = {t.leak_row: t.target_id for t in truth}
    right = [
        (r, target)
        for r, target, _ in links
        if (pk := source[r]) is not None and person_of[target] == person_of[pk]
    ]
    found = {r for r, _ in right}
    leaked = [t for t in truth if t.target_id is not None]
    by_noise = {
        str(noise): round(
            sum(t.leak_row in found for t in leaked if t.noise is noise)
            / max(1, sum(t.noise is noise for t in leaked)),
            4,
        )
        for noise in leak.Noise
    }
    return {
        "store": len(people),
        "leak": len(truth),
        "unrelated": sum(t.target_id is None for t in truth),
        "seconds": round(seconds, 1),
        "links": len(links),
        "precision": round(len(right) / max(1, len(links)), 4),
        "recall": round(len(found) / max(1, len(leaked)), 4),
        "recall_by_noise": by_noise,
        "false_links_to_unrelated": sum(source[r] is None for r, _, _ in links),
    }


if __name__ == "__main__":
    import argparse
    import json
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    print(json.dumps(_check_on_current_database(arguments.rows, arguments.seed)))
