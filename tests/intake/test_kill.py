"""An import killed part-way (kill -9 of the process) leaves no part of a list."""

import os
import signal
import subprocess
import sys
import tempfile
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
def test_an_import_killed_midway_leaves_no_part_of_a_list(world, tmp_path, custody_process):
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


def files_naming(persons, roots) -> list[str]:
    """The files under `roots` that hold a name, kana name or phone number of one of
    `persons`, in UTF-8 or CP932, as GNU grep finds them (byte for byte, binary files
    read as text). Values shorter than 8 bytes are left out: ciphertext would hold them
    by chance."""
    patterns = set()
    for person in persons:
        for value in (person.name_kanji, person.name_kana, person.phone):
            for form in {value, value.replace(" ", "")}:
                for encoding in ("utf-8", "cp932"):
                    encoded = form.encode(encoding)
                    if len(encoded) >= 8:
                        patterns.add(encoded)
    with tempfile.NamedTemporaryFile(suffix=".patterns") as listed:
        listed.write(b"\n".join(sorted(patterns)) + b"\n")
        listed.flush()
        found = subprocess.run(
            ["grep", "-rlaF", "-f", listed.name, *map(str, roots)],
            env={**os.environ, "LC_ALL": "C"},
            capture_output=True,
            check=False,
        )
    assert found.returncode in (0, 1), found.stderr
    return found.stdout.decode().split()


def database_files() -> list[Path]:
    """The SQLite database and its journal files (PostgreSQL keeps its own elsewhere)."""
    if connection.vendor != "sqlite":
        return []
    name = Path(connection.settings_dict["NAME"])
    return [p for p in (name, Path(f"{name}-wal"), Path(f"{name}-shm")) if p.exists()]


def start_worker(env: dict[str, str], *extra: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("yobikake")), "db_worker"]
    command += ["--interval", "0.1", "--no-startup-delay", "--no-reload", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_import_leaves_no_name_on_disk_and_the_next_marks_it_failed(
    custody_process, world, tmp_path, settings
):
    from tests.intake.files import people
    from yobikake.audit.models import Alert, Event
    from yobikake.audit.tags import AuditTag
    from yobikake.intake import services
    from yobikake.intake.tasks import import_uploaded_list
    from yobikake.intake.uploads import seal_upload

    home = tmp_path / "home"
    home.mkdir()
    settings.YOBIKAKE_HOME = home
    persons = people(30_000, seed=17)
    upload_id, sha256 = seal_upload([csv_bytes([row_of(p) for p in persons])])
    list_import = services.start_import(
        actor=world.staff_a,
        insurer=world.insurer_a,
        fiscal_year=2022,
        file_name="big.csv",
        file_sha256=sha256,
        policy="reject",
    )
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    import_uploaded_list.enqueue(list_import.pk, upload_id)
    connection.close()
    env = database_env()
    env.pop("YOBIKAKE_TASKS_BACKEND", None)
    worker = start_worker(env)
    deadline = time.monotonic() + 60
    while not ListImport.objects.filter(state=ListImport.State.RUNNING).exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # well into the rows
    assert worker.poll() is None, "the import finished before it could be killed"
    helpers = children_of(worker.pid)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers):
        assert time.monotonic() < deadline, "a helper of the killed worker lives on"
        time.sleep(0.05)
    connection.close()

    # The plaintext lived in the worker's memory only: nothing on disk names anyone.
    assert files_naming(persons, [home, *database_files()]) == []
    assert ListImport.objects.get().state == ListImport.State.RUNNING  # it never finished

    # The next worker to start finds the import without its process, says it failed,
    # on the record and to the security officer, and leaves nothing behind.
    restarted = start_worker(env, "--batch")
    _out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err.decode()
    connection.close()
    list_import.refresh_from_db()
    assert (list_import.state, list_import.error_code) == ("failed", "interrupted")
    assert list_import.error_message and list_import.finished_at
    assert not TargetList.objects.exists() and not Target.objects.exists()
    event = Event.objects.get(tag=AuditTag.LIST_IMPORT)
    assert (event.outcome, event.reason) == (Event.Outcome.DENIED, "interrupted")
    assert event.actor_user_id == world.staff_a.pk
    alert = Alert.objects.get(rule="import_interrupted")
    assert alert.event_seq == event.seq
    assert files_naming(persons, [home, *database_files()]) == []
    assert [p.name for p in (home / "uploads").iterdir()] == []
