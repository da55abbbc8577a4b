"""Sealing in a worker process: the rows it seals are the rows the importer would have
sealed itself, a worker that dies costs only time, and no worker outlives its importer."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.custody_helpers import open_rows
from tests.intake.files import csv_bytes, people, row_of, write
from tests.intake.test_import import run
from tests.processes import alive, children_of
from yobikake.custody import sealing as custody_sealing
from yobikake.custody.protocol import field_aad
from yobikake.intake import sealing
from yobikake.intake.models import ListImport, Target
from yobikake.vault import datakeys, records
from yobikake.vault.blind import Indexer


def test_the_target_table_is_the_one_the_sealed_values_name():
    assert Target._meta.db_table == sealing.TABLE
    assert Target.SEALED_FIELDS == sealing.SEALED_FIELDS


def _import_and_open(world, tmp_path, count):
    persons = people(count, seed=31)
    result = run(world, write(tmp_path, "l.csv", csv_bytes([row_of(p) for p in persons])))
    assert result.state == ListImport.State.ACCEPTED, result.error_message
    target_list = result.target_list
    indexer = Indexer(datakeys.index_key(world.insurer_a.pk))
    targets = Target.objects.filter(target_list=target_list).order_by("row_number")
    assert targets.count() == count
    every = open_rows(targets)
    for target, person in zip(targets, persons, strict=True):
        opened = every[target.pk]
        assert (opened["name_kana"], opened["insured_number"]) == (
            person.name_kana,
            person.insured_number,
        )
        fields = records.IndexedFields(
            name_kanji=opened["name_kanji"],
            name_kana=opened["name_kana"],
            birth_date=person.birth_date,
            phone=opened["phone"],
            address=opened["address"],
            insured_number=opened["insured_number"],
        )
        for kind, value in records.index_values(indexer, fields):
            assert bytes(getattr(target, sealing.INDEX_COLUMNS[kind])) == value
    return result


@pytest.mark.parametrize("workers", [0, 1])
def test_rows_sealed_in_a_worker_or_in_process_open_and_index_alike(
    world, tmp_path, settings, workers
):
    settings.YOBIKAKE_IMPORT_WORKERS = workers
    # More than a batch, so that several are in flight at once.
    _import_and_open(world, tmp_path, sealing.BATCH * 3 + 7)


def _job(people, list_id=1):
    return sealing.SealJob(
        batch_key=os.urandom(32),
        batch_id=list_id,
        index_key=os.urandom(32),
        list_id=list_id,
        insurer_id=1,
        year_end=date(2023, 3, 31),
        people=people,
    )


def test_batches_come_back_in_order_when_the_importer_seals_some_itself():
    """Given more batches than the worker keeps up with, the importer seals the newest
    ones it has not started; every batch still comes back once, in the order submitted,
    as sealed as the worker would have sealed it."""
    persons = people(sealing.BATCH, seed=37)
    jobs = [_job(list(enumerate(persons, 1)), list_id) for list_id in range(1, 13)]
    sealer = sealing.Sealer(1)
    came_back = []
    for job in jobs:
        sealer.submit(job)
        came_back += sealer.ready()
        # Never more than AHEAD batches left to the worker.
        assert sum(not sealer._done(batch) for batch in sealer._in_flight) <= sealing.AHEAD
    came_back += list(sealer.drain())
    assert 0 < sealer.sealed_here < len(jobs), "one of the two processes sealed nothing"
    assert [[row[4][0] for row in batch] for batch in came_back] == [
        [job.list_id * sealing.ROWS_PER_LIST + row for row, _ in job.people] for job in jobs
    ]
    for job, batch in zip(jobs, came_back, strict=True):
        aead = AESGCM(job.batch_key)
        for (row, person), (_row, _same, _sex, _age, values) in zip(job.people, batch, strict=True):
            sealed = dict(zip(sealing.COLUMNS, values, strict=True))
            assert sealed["row_number"] == row
            place = field_aad(sealing.TABLE, "name_kana", sealed["id"], job.list_id, 1)
            assert custody_sealing.batch_of(bytes(sealed["name_kana"])) == job.batch_id
            assert custody_sealing.open_field(aead, place, bytes(sealed["name_kana"])) == (
                person.name_kana
            )


def test_drain_gives_each_batch_as_soon_as_it_is_sealed():
    """At the end of a list the importer stores one batch while the rest are sealed:
    drain gives the first before it seals the second."""
    persons = list(enumerate(people(3, seed=38), 1))
    sealer = sealing.Sealer(0)
    for person in persons:
        sealer.submit(_job([person]))
    drained = sealer.drain()
    assert [row for row, *_ in next(drained)] == [1]
    assert sealer.sealed_here == 1
    assert [[row for row, *_ in batch] for batch in drained] == [[2], [3]]
    assert sealer.sealed_here == 3


def test_a_batch_the_worker_cannot_seal_raises_here_and_the_worker_lives_on():
    """The error is raised in the importer (which fails the import), not lost with a
    dead worker; and the worker is not restarted for it."""
    sealer = sealing.Sealer(1)
    sealer.submit(_job([]))
    list(sealer.drain())
    (worker,) = sealing.workers()
    no_age = replace(people(1, seed=43)[0], birth_date=None, age=None)
    sealer.submit(_job([(1, no_age)]))
    with pytest.raises(ValueError, match="birth date or an age"):
        list(sealer.drain())
    sealer = sealing.Sealer(1)
    sealer.submit(_job([(1, people(1, seed=43)[0])]))
    assert len(next(sealer.drain())) == 1
    assert sealing.workers() == [worker]


def test_a_send_cut_short_retires_the_worker_and_the_next_batch_gets_a_new_one(monkeypatch):
    """An exception in the middle of a send (a signal handler's, say) would leave the
    pipe out of step; the worker is retired instead, and nothing waits for it."""
    sealer = sealing.Sealer(1)
    sealer.submit(_job([]))
    list(sealer.drain())
    (worker,) = sealing._pool._workers

    def interrupted(data):
        raise KeyboardInterrupt

    monkeypatch.setattr(worker._conn, "send_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sealing.Sealer(1).submit(_job([(1, people(1, seed=44)[0])]))
    assert worker.broken
    worker.process.join(10)
    assert not worker.process.is_alive()
    sealer = sealing.Sealer(1)
    sealer.submit(_job([(1, people(1, seed=44)[0])]))
    assert len(next(sealer.drain())) == 1
    assert sealer.sealed_here == 0  # by a new worker
    assert worker.process.pid not in sealing.workers()


def test_a_worker_that_dies_costs_only_time(world, tmp_path, settings):
    settings.YOBIKAKE_IMPORT_WORKERS = 1
    sealer = sealing.Sealer(1)
    sealer.submit(_job([]))
    assert list(sealer.drain()) == [[]]
    (worker,) = sealing.workers()
    os.kill(worker, signal.SIGKILL)
    _import_and_open(world, tmp_path, sealing.BATCH * 2)
    assert worker not in sealing.workers()


def test_no_worker_outlives_the_process_that_started_it():
    script = (
        "import os, sys\n"
        "from yobikake.intake import sealing\n"
        "from datetime import date\n"
        "job = sealing.SealJob(os.urandom(32), 1, os.urandom(32), 1, 1, date(2023, 3, 31), [])\n"
        "s = sealing.Sealer(1); s.submit(job); list(s.drain())\n"
        "print(*sealing.workers(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    workers = {int(pid) for pid in process.stdout.readline().split()}
    assert workers and workers <= children_of(process.pid)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a sealing worker outlived its importer"
        time.sleep(0.05)


def test_a_file_whose_canaries_would_number_a_row_past_its_lists_ids_is_refused(
    world, tmp_path, settings, monkeypatch
):
    """A target's id is its list's id × ROWS_PER_LIST + its row number, and canaries
    inserted among the rows number those after them on: a row pushed to ROWS_PER_LIST
    would take the next list's first id. Here ROWS_PER_LIST is 20, with 3 canaries."""
    settings.YOBIKAKE_CANARIES_PER_LIST = 3
    monkeypatch.setattr(sealing, "ROWS_PER_LIST", 20)
    fits = run(world, write(tmp_path, "16.csv", csv_bytes([row_of(p) for p in people(16)])))
    assert fits.state == ListImport.State.ACCEPTED, fits.error_message
    assert Target.objects.filter(target_list=fits.target_list).count() == 19

    over = run(
        world,
        write(tmp_path, "17.csv", csv_bytes([row_of(p) for p in people(17, seed=12)])),
        fiscal_year=2021,
    )
    assert (over.state, over.error_code) == (ListImport.State.REJECTED, "too_many_rows")
    assert over.target_list is None
    assert Target.objects.count() == 19
