"""The address key's cost per address: synthetic Gifu addresses written the ways the
seed's lists write them (dash, prefecture, space before the building, in the shares of
`synth.lists.STYLE_WEIGHTS`), folded as intake folds a cell, then keyed without the
key's cache (every address new to it, the worst case of a list import).

    .venv/bin/python bench/addresses.py [--count 300000] [--seed 1] [--repeat 5]
    .venv/bin/python bench/addresses.py --baseline HEAD~3   # and jp/addresses.py at HEAD~3

Prints one JSON line: µs an address (process CPU time, which other processes on the
machine disturb less than the wall clock), best and median of the repeats. With
`--baseline`, the module as it was at that git revision is timed in the same run,
alternating with today's, and the addresses whose keys differ are counted. No database.
"""

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
sys.path.insert(0, os.path.dirname(__file__))
from common import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _addresses(count: int, seed: int) -> list[str]:
    from yobikake.jp import normalize
    from yobikake.synth.areas import all_towns, random_address
    from yobikake.synth.lists import STYLE_WEIGHTS

    rng = random.Random(seed)
    towns = all_towns()

    def drawn(name: str) -> object:
        weights = STYLE_WEIGHTS[name]
        return rng.choices(list(weights), list(weights.values()))[0]

    return [
        normalize.fold(
            random_address(towns, rng).text(
                prefecture=bool(drawn("prefecture")),
                dash=str(drawn("dash")),
                space=str(drawn("name_space")),
            )
        )
        for _ in range(count)
    ]


def _module_at(revision: str) -> ModuleType:
    """jp/addresses.py as it was at `revision`, beside today's (it imports today's
    jp/kanji.py and its table)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:src/yobikake/jp/addresses.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "baseline_addresses.py")
        with open(path, "wb") as file:
            file.write(source)
        spec = importlib.util.spec_from_file_location("baseline_addresses", path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load jp/addresses.py at {revision}")
        module = sys.modules["baseline_addresses"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def _time(key: Callable[[str], object], texts: list[str]) -> float:
    start = time.process_time()
    for text in texts:
        key(text)
    return (time.process_time() - start) / len(texts) * 1e6


def _figures(runs: list[float]) -> dict[str, float]:
    return {"best": round(min(runs), 2), "median": round(statistics.median(runs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="a git revision to compare with")
    args = parser.parse_args()
    django.setup()
    from yobikake.jp import addresses

    texts = _addresses(args.count, args.seed)
    keys = {"today": addresses._normalize.__wrapped__}  # the key without its cache
    if args.baseline:
        keys["baseline"] = _module_at(args.baseline)._normalize.__wrapped__
    for key in keys.values():
        key(texts[0])  # the city index is built on first use, not timed
    runs: dict[str, list[float]] = {name: [] for name in keys}
    for _ in range(args.repeat):
        for name, key in keys.items():
            runs[name].append(_time(key, texts))
    result: dict[str, object] = {
        "addresses": len(texts),
        "us_per_address": _figures(runs["today"]),
    }
    if args.baseline:
        today, baseline = keys["today"], keys["baseline"]
        result["baseline"] = args.baseline
        result["baseline_us_per_address"] = _figures(runs["baseline"])
        result["keys_differ"] = sum(
            today(text).key != baseline(text).key  # type: ignore[attr-defined]
            for text in texts
        )
    print(json.dumps({**result, **machine()}))


if __name__ == "__main__":
    main()
