"""What the benchmarks share: running a measurement in a child process against a fresh
SQLite home or a fresh PostgreSQL database, the custodian every import and reveal goes
through, and describing the machine."""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_BASE = os.environ.get("YOBIKAKE_TEST_PG", "postgres://postgres@127.0.0.1:5432")
YOBIKAKE = str(Path(sys.executable).with_name("yobikake"))

# What a benchmark's custodian allows: any hour, and budgets, rates and bulk limits no
# benchmark reaches. A benchmark measures what an open costs, not the custodian's rules
# (tests/custody tests those).
BENCH_CUSTODY = {
    "calling_hours": [0, 24],
    "holder_hourly": {"default": 1_000_000},
    "centre_hourly": 100_000_000,
    "centre_per_minute": 100_000_000,
    "seats": 1_000_000,
    "bulk_per_day": 1_000_000,
    "bulk_max_rows": 100_000_000,
}


def machine() -> dict[str, str]:
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        # UTC: Django, once set up, puts the process in Asia/Tokyo.
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def _processes() -> tuple[dict[int, int], dict[int, float], dict[int, str]]:
    """Every process's parent, CPU time (user and system, seconds) and name."""
    parent_of: dict[int, int] = {}
    cpu: dict[int, float] = {}
    name: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        head, tail = text.rsplit(")", 1)
        fields = tail.split()
        pid = int(stat.parent.name)
        parent_of[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        name[pid] = head.split("(", 1)[1]
    return parent_of, cpu, name


def family_cpu_s(root: int) -> float:
    """CPU time of process `root` and all its descendants alive now."""
    parent_of, cpu, _ = _processes()
    family, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parent_of.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return sum(cpu.get(pid, 0.0) for pid in family)


def postgres_cpu_s() -> float:
    """CPU time of the local PostgreSQL server's processes alive now (every database's,
    so other work on the server counts too)."""
    _, cpu, name = _processes()
    return sum(cpu[pid] for pid, comm in name.items() if comm == "postgres")


@dataclass(frozen=True)
class BenchCustodian:
    """A custodian process a benchmark started (`custodian_process`)."""

    env: dict[str, str]  # YOBIKAKE_CUSTODIAN_URL and YOBIKAKE_CUSTODIAN_CLIENT_DIR
    pid: int
    idle_cpu_s: float = 0.0  # what starting and filling the key pool cost, before use

    def cpu_s(self) -> float:
        """CPU time (user and system) of the custodian's processes since it was ready
        (its key pool full): `serve` and the worker it starts."""
        return round(self._cpu_s() - self.idle_cpu_s, 1)

    def _cpu_s(self) -> float:
        return family_cpu_s(self.pid)


@contextmanager
def custodian_process(key_pool: int | None = None) -> Iterator[BenchCustodian]:
    """A custodian of synthetic organisations as its own process (`yobikake custodian
    init --synthetic`, then `serve` on a free loopback port), in a temporary home with
    `BENCH_CUSTODY`'s rates, as the demo runs one beside the application; its pool of
    key pairs (custody.json `key_pool`: `key_pool` if given, else the default) full
    before it is used, as a custodian in service has been idle long enough to fill it.
    While it runs, this process's environment names it (YOBIKAKE_CUSTODIAN_URL and
    YOBIKAKE_CUSTODIAN_CLIENT_DIR, which Django's settings read), so every child the
    benchmark starts reaches it."""
    from yobikake.custody.config import CONFIG_FILE
    from yobikake.custody.protocol import CustodyUnavailable
    from yobikake.vault.custodian import HttpCustodian
    from yobikake.vault.devserver import free_port

    with tempfile.TemporaryDirectory(prefix="yobikake-bench-custody-") as root:
        home, client_dir = Path(root) / "custody", Path(root) / "application" / "custodian"
        subprocess.run(
            [YOBIKAKE, "custodian", "init", "--synthetic", "--home", home,
             "--client-dir", client_dir],
            check=True,
            capture_output=True,
        )  # fmt: skip
        config = home / CONFIG_FILE
        pool = {} if key_pool is None else {"key_pool": key_pool}
        config.write_text(json.dumps({**json.loads(config.read_text()), **BENCH_CUSTODY, **pool}))
        bind = f"127.0.0.1:{free_port()}"
        url = f"https://{bind}"
        log = Path(root) / "custodian.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [YOBIKAKE, "custodian", "serve", "--home", home, "--bind", bind],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        env = {
            "YOBIKAKE_CUSTODIAN_URL": url,
            "YOBIKAKE_CUSTODIAN_CLIENT_DIR": str(client_dir),
            "YOBIKAKE_CUSTODY_HOME": str(home),
        }
        before = {name: os.environ.get(name) for name in env}
        try:
            client = HttpCustodian(url, client_dir)
            deadline = time.monotonic() + 30
            try:
                while True:
                    try:
                        health = client.health()
                        break
                    except CustodyUnavailable:
                        if process.poll() is not None or time.monotonic() > deadline:
                            raise SystemExit(
                                f"the custodian did not start:\n{log.read_text()}"
                            ) from None
                        time.sleep(0.1)
                deadline = time.monotonic() + 300
                while (pool := health.get("key_pool")) and pool["ready"] < pool["size"]:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the custodian's key pool did not fill: {pool}")
                    time.sleep(0.5)
                    health = client.health()
            finally:
                client.close()
            os.environ.update(env)
            ready = BenchCustodian(env, process.pid)
            yield BenchCustodian(env, process.pid, idle_cpu_s=ready._cpu_s())
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def custodian_waits() -> Iterator[dict[str, dict[str, float]]]:
    """How long this process waited on the custodian, by call (create_list, open, …):
    {call: {"calls": n, "s": seconds}}. Measured around the HTTP adapter's methods, so
    it is the round trip with the custodian's own work inside it."""
    from yobikake.vault.custodian import HttpCustodian

    waits: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0, "s": 0.0})
    names = ("create_list", "register_canaries", "leave_out", "open", "open_bulk", "produce_file")
    originals = {name: getattr(HttpCustodian, name) for name in names}

    def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                waits[name]["calls"] += 1
                waits[name]["s"] += time.perf_counter() - start

        return wrapper

    for name, call in originals.items():
        setattr(HttpCustodian, name, timed(name, call))
    try:
        yield waits
    finally:
        for name, call in originals.items():
            setattr(HttpCustodian, name, call)
        for wait in waits.values():
            wait["s"] = round(wait["s"], 2)


def confirm_holders(holders: list[tuple[int, str, int | None]]) -> None:
    """The benchmark plays the security officer: each (account id, role, insurer id)
    confirmed in its custodian's registry of holders, through the custody home as
    `yobikake custodian holder confirm` does (the custodian opens for no other)."""
    from datetime import UTC, datetime, timedelta

    from yobikake.custody.core import Custodian

    custodian = Custodian(Path(os.environ["YOBIKAKE_CUSTODY_HOME"]))
    try:
        until = datetime.now(UTC) + timedelta(days=2)
        for user_id, role, insurer_id in holders:
            custodian.confirm_holder(user_id, role, insurer_id, until, by="bench")
    finally:
        custodian.close()


def run_child(
    script: str,
    backend: str,
    args: list[str],
    env_extra: dict[str, str] | None = None,
    *,
    key_pool: int | None = None,
) -> dict[str, object]:
    """Run `script --child ARGS` with a fresh database of `backend` ("sqlite" or
    "postgresql") and a custodian of its own (`custodian_process`: no list key made by
    an earlier run is found there), and return the JSON object it prints last, with the
    custodian's CPU time (`custodian_cpu_s`)."""
    with custodian_process(key_pool) as custodian, tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="yobikake.settings", **(env_extra or {}))
        env.pop("DATABASE_URL", None)
        env["YOBIKAKE_HOME"] = home
        dbname = f"yobikake_bench_{os.getpid()}"
        if backend == "postgresql":
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", dbname], check=True)
            env["DATABASE_URL"] = f"{PG_BASE}/{dbname}"
        try:
            out = subprocess.run(
                [sys.executable, script, "--child", *args],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if backend == "postgresql":
                subprocess.run(
                    ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", dbname],
                    check=False,
                )
        if out.returncode != 0:
            raise SystemExit(f"{backend} run failed:\n{out.stderr}")
        result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
        result["custodian_cpu_s"] = custodian.cpu_s()
        return result


def setup_parent() -> None:
    """Django for the parent of a benchmark's children, in a scratch home of its own."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    os.environ.setdefault("YOBIKAKE_HOME", tempfile.mkdtemp(prefix="yobikake-bench-"))
    django.setup()


def setup_child_store() -> None:
    """Django in a benchmark's child: migrated, with the demo's insurers and accounts.
    `load_demo` rather than the `demo` command, which would start a custodian of its
    own where the benchmark's already listens."""
    import django

    django.setup()
    from django.core.management import call_command

    from yobikake.synth.demo import load_demo

    call_command("migrate", verbosity=0)
    load_demo()
