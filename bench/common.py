"""What the benchmarks share: running a measurement in a child process against a fresh
SQLite home or a fresh PostgreSQL database, and describing the machine."""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

PG_BASE = os.environ.get("YOBIKAKE_TEST_PG", "postgres://postgres@127.0.0.1:5432")


def machine() -> dict[str, str]:
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }


def run_child(
    script: str, backend: str, args: list[str], env_extra: dict[str, str] | None = None
) -> dict[str, object]:
    """Run `script --child ARGS` with a fresh database of `backend` ("sqlite" or
    "postgresql") and return the JSON object it prints last."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="yobikake.settings", **(env_extra or {}))
    env.pop("DATABASE_URL", None)
    with tempfile.TemporaryDirectory() as home:
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
        return json.loads(out.stdout.strip().splitlines()[-1])


def setup_parent() -> None:
    """Django for the parent of a benchmark's children, in a scratch home of its own."""
    import tempfile

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yobikake.settings")
    os.environ.setdefault("YOBIKAKE_HOME", tempfile.mkdtemp(prefix="yobikake-bench-"))
    django.setup()


def setup_child_store() -> None:
    """Django in a benchmark's child: migrated, with the demo's insurers and accounts."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("demo", "--no-serve", "--no-lists", stdout=open(os.devnull, "w"))  # noqa: SIM115
