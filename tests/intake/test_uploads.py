"""The upload store: a sealed upload is opened into memory only, whoever reads it (list
imports, leak scoping, checkup results, the phone directory); the task worker clears up
what a killed process left, and marks its import failed."""

import os
import time
from pathlib import Path

import pytest

from tests.intake.files import csv_bytes, people, row_of
from tests.intake.test_kill import files_naming
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.intake import leases, services
from yobikake.intake.models import ListImport
from yobikake.intake.uploads import LEFTOVER_AFTER, opened_upload, remove_leftovers, seal_upload


@pytest.fixture
def home(settings, tmp_path):
    settings.YOBIKAKE_HOME = tmp_path / "home"
    settings.YOBIKAKE_HOME.mkdir()
    return settings.YOBIKAKE_HOME


def test_an_opened_upload_is_in_memory_and_nothing_on_disk_names_anyone(home):
    persons = people(50)
    data = csv_bytes([row_of(p) for p in persons])
    upload_id, _sha256 = seal_upload([data])
    assert files_naming(persons, [home]) == []
    with opened_upload(upload_id) as path:
        assert path.read_bytes() == data and path.stat().st_size == len(data)
        assert os.readlink(path).startswith("/memfd:")  # no directory names it
        assert list((home / "uploads").iterdir()) == []  # the sealed copy went as it opened
        assert files_naming(persons, [home]) == []
    assert not path.exists()


def test_the_worker_removes_what_no_task_will_read(home):
    uploads = home / "uploads"
    waiting, _ = seal_upload([b"a"])
    orphan, _ = seal_upload([b"b"])
    young, _ = seal_upload([b"c"])
    (uploads / ".open-x1y2z3").write_bytes("氏名,カナ氏名\n".encode())  # an earlier version's
    old = time.time() - LEFTOVER_AFTER - 60
    for upload_id in (waiting, orphan):
        os.utime(uploads / f"{upload_id}.sealed", (old, old))
    removed = remove_leftovers({waiting})
    assert sorted(removed) == sorted([".open-x1y2z3", f"{orphan}.sealed"])
    assert sorted(p.name for p in uploads.iterdir()) == sorted(
        [f"{waiting}.sealed", f"{young}.sealed"]
    )


def _running_import(world) -> ListImport:
    list_import = services.start_import(
        actor=world.staff_a,
        insurer=world.insurer_a,
        fiscal_year=2022,
        file_name="a.csv",
        file_sha256="0" * 64,
        policy="reject",
    )
    ListImport.objects.filter(pk=list_import.pk).update(state=ListImport.State.RUNNING)
    return list_import


def test_an_import_whose_process_lives_is_left_alone_and_one_whose_process_is_gone_fails(
    world, home
):
    list_import = _running_import(world)
    with leases.holding(services.IMPORT_JOB, list_import.pk):  # as its process would
        assert services.fail_interrupted_imports() == []
        list_import.refresh_from_db()
        assert list_import.state == ListImport.State.RUNNING
    [failed] = services.fail_interrupted_imports()
    assert failed.pk == list_import.pk
    list_import.refresh_from_db()
    assert (list_import.state, list_import.error_code) == ("failed", "interrupted")
    assert "中断" in list_import.error_message
    event = Event.objects.get(tag=AuditTag.LIST_IMPORT)
    assert (event.outcome, event.reason, event.actor_user_id) == (
        Event.Outcome.DENIED,
        "interrupted",
        world.staff_a.pk,
    )
    alert = Alert.objects.get(rule="import_interrupted")
    assert alert.event_seq == event.seq and f"#{list_import.pk}" in alert.summary
    assert services.fail_interrupted_imports() == []  # once
    assert list((Path(home) / "run").iterdir()) == []


def test_the_lease_is_held_once_per_process_and_refused_to_another_holder(world, home):
    list_import = _running_import(world)
    with leases.holding(services.IMPORT_JOB, list_import.pk):
        with leases.holding(services.IMPORT_JOB, list_import.pk):  # the task, then its import
            pass
        with leases.if_abandoned(services.IMPORT_JOB, list_import.pk) as abandoned:
            assert not abandoned  # still held by the outer block
    with leases.if_abandoned(services.IMPORT_JOB, list_import.pk) as abandoned:
        assert abandoned
