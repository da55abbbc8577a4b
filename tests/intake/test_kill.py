"""An import killed part-way (kill -9 of the process) leaves no part of a list."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.intake.files import csv_bytes, row_of, write
from tests.processes import alive, children_of
from yobikake.intake.models import ListImport, Target, TargetList
from yobikake.synth.people import synthetic_people


def database_env() -> dict[str, str]:
    """Environment for a `yobikake` subprocess on this test's database: the SQLite file
    with the project's own options (WAL, IMMEDIATE, busy timeout), or PostgreSQL."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "yobikake.settings",
        "YOBIKAKE_HOME": str(settings.YOBIKAKE_HOME),
        "YOBIKAKE_KEYS_DIR": str(settings.YOBIKAKE_KEYS_DIR),
    }
    env.pop("DATABASE_URL", None)
    if connection.vendor == "sqlite":
        env["YOBIKAKE_SQLITE_PATH"] = str(db["NAME"])
    else:
        host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}:{port}/{db['NAME']}"
    return env


@pytest.mark.django_db(transaction=True)
def test_an_import_killed_midway_leaves_no_part_of_a_list(world, tmp_path):
    rows = [row_of(p) for p in synthetic_people(30_000, seed=5, fiscal_year=2022)]
    path = write(tmp_path, "big.csv", csv_bytes(rows))
    connection.close()
    env = database_env()
    command = [str(Path(sys.executable).with_name("yobikake")), "intake", "import", str(path)]
    command += ["--insurer", world.insurer_a.number, "--fiscal-year", "2022"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ListImport.objects.filter(state=ListImport.State.RUNNING).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # well into the rows
    assert process.poll() is None, "the import finished before it could be killed"
    helpers = children_of(process.pid)  # the sealing worker, when there is one
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers):
        assert time.monotonic() < deadline, "a helper of the killed import lives on"
        time.sleep(0.05)
    connection.close()
    assert ListImport.objects.get().state == ListImport.State.RUNNING  # it never finished
    assert not TargetList.objects.exists()
    assert not Target.objects.exists()
