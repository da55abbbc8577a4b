"""Sealing a list's rows: every personal field under the list's data key, the blind
indexes under the insurer's index key, a batch at a time — in this process, or in a
worker process beside it while this one reads and checks the next rows.

Imports no Django, so a worker starts without it. A worker holds the keys only while it
seals a batch, and dies with the process that started it.
"""

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from typing import Any

from yobikake.jp import normalize
from yobikake.synth.people import Person
from yobikake.vault import records
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.crypto import FieldCipher, field_aad

log = logging.getLogger(__name__)

TABLE = "intake_target"
SEALED_FIELDS = (
    "name_kanji",
    "name_kana",
    "birth_date",
    "phone",
    "postal_code",
    "address",
    "insured_number",
)
# Each blind-index kind's column on the target's row. One row per person with its index
# values in indexed columns costs a list import a third of what a row per value did.
INDEX_COLUMNS = {
    IndexKind.PHONE: "idx_phone",
    IndexKind.INSURED_NUMBER: "idx_insured_number",
    IndexKind.KANA_BIRTH: "idx_kana_birth",
    IndexKind.NAME_BIRTH: "idx_name_birth",
    IndexKind.KANA_ADDRESS: "idx_kana_address",
    IndexKind.NAME_ADDRESS: "idx_name_address",
    IndexKind.KANA_PHONE: "idx_kana_phone",
}
# The index columns looked up by value, which have a database index: same-year
# duplicates (insured number, kana + birth date) and the phone directory's matching
# (name or kana + address). Do-not-call, the inquiry desk and scoping read the others
# with their row or all at once.
LOOKED_UP = ("idx_insured_number", "idx_kana_birth", "idx_kana_address", "idx_name_address")
# A target's id is its list's id times this plus its row number, so the id — which the
# sealed values are bound to — is known before the row is written. A prefecture's whole
# NHI is a few million people; no list comes near ten million rows.
ROWS_PER_LIST = 10_000_000
COLUMNS = (
    "id",
    "target_list_id",
    "insurer_id",
    "row_number",
    "sex",
    "age",
    "postal_area",
    "has_phone",
    *SEALED_FIELDS,
    *INDEX_COLUMNS.values(),
)


@dataclass(frozen=True)
class SealJob:
    """A batch of one list's people, with the keys to seal and index them."""

    data_key: bytes
    index_key: bytes
    list_id: int
    insurer_id: int
    year_end: date
    people: list[tuple[int, Person]]  # (row number, person)

    def __reduce__(self) -> tuple[object, ...]:
        # Sent to the worker as plain tuples: pickling a dataclass per person cost the
        # importer more than the worker spent on it.
        flat = [
            (row, p.name_kanji, p.name_kana, p.sex, p.birth_date, p.phone, p.postal_code,
             p.address, p.insured_number, p.age)
            for row, p in self.people
        ]  # fmt: skip
        keys = (self.data_key, self.index_key, self.list_id, self.insurer_id, self.year_end)
        return (_job_from, (*keys, flat))


def _job_from(
    data_key: bytes,
    index_key: bytes,
    list_id: int,
    insurer_id: int,
    year_end: date,
    flat: list[tuple[Any, ...]],
) -> SealJob:
    people = [(row, Person(*fields)) for row, *fields in flat]
    return SealJob(data_key, index_key, list_id, insurer_id, year_end, people)


def identity(person: Person, age: int) -> tuple[IndexKind, tuple[str, ...]]:
    """The index kind and parts that say whether a row repeats someone: the insured
    number when there is one, else kana + birth date (or age, when the list gives no
    birth date). The first two are the row's `idx_insured_number` and `idx_kana_birth`."""
    insured = normalize.insured_number_key(person.insured_number)
    if insured:
        return IndexKind.INSURED_NUMBER, (insured,)
    kana = normalize.kana_key(person.name_kana) or "?"
    birth = normalize.birth_key(person.birth_date) if person.birth_date else f"age:{age}"
    return IndexKind.KANA_BIRTH, (kana, birth)


Sealed = tuple[int, bytes, str, int, tuple[object, ...]]


# Each sealed column's associated data up to the row id (crypto.field_aad's layout).
_AAD_PREFIX = tuple(field_aad(TABLE, column, 0)[:-1] for column in SEALED_FIELDS)
_INDEX_KINDS = tuple(INDEX_COLUMNS)


def seal_batch(job: SealJob) -> list[Sealed]:
    """Each row of the batch as (row, identity, sex, age, its values as `COLUMNS`)."""
    cipher = FieldCipher(job.data_key)
    indexer = Indexer(job.index_key)
    first_id = job.list_id * ROWS_PER_LIST
    rows: list[Sealed] = []
    for row, person in job.people:
        target_id = first_id + row
        birth = person.birth_date
        sealed = cipher.seal_fields(
            _AAD_PREFIX,
            str(target_id).encode(),
            (
                person.name_kanji,
                person.name_kana,
                birth.isoformat() if birth else "",
                person.phone,
                person.postal_code,
                person.address,
                person.insured_number,
            ),
        )
        parts = records.index_parts(
            person.name_kanji,
            person.name_kana,
            birth,
            person.phone,
            person.address,
            person.insured_number,
        )
        indexed = dict(indexer.values(parts))
        age = person.age_on(job.year_end)
        values = (
            target_id,
            job.list_id,
            job.insurer_id,
            row,
            person.sex,
            age,
            _postal_area(person.postal_code),
            bool(person.phone),
            *sealed,
            *[indexed.get(kind) for kind in _INDEX_KINDS],
        )
        # The identity is the row's insured-number or kana + birth index when it has one
        # (`identity` computes the same parts): not hashed twice.
        same = indexed.get(IndexKind.INSURED_NUMBER) or indexed.get(IndexKind.KANA_BIRTH)
        if same is None:
            kind, parts_of_identity = identity(person, age)
            same = indexer.value(kind, *parts_of_identity)
        rows.append((row, same, person.sex, age, values))
    return rows


def _postal_area(postal_code: str) -> str:
    """The first three digits of a postal code (how validation writes it: 500-8701)."""
    head = postal_code[:3]
    if head.isdigit() and head.isascii():
        return head
    return "".join(c for c in postal_code if c.isdigit())[:3]


# Small batches keep the worker busy while the importer checks the next rows; at most
# AHEAD of them wait to be written.
BATCH = 250
AHEAD = 4
SWITCH_INTERVAL = 0.0005  # seconds; see _start_pool


@dataclass
class _Batch:
    job: SealJob
    pool: ProcessPoolExecutor | None
    future: "Future[list[Sealed]] | None"
    sealed: list[Sealed] | None = None  # sealed in this process


class Sealer:
    """Seals batches in order, in a worker process when there is one: `submit` a job,
    then `ready()` and `drain()` give the sealed rows back in the order submitted.

    Rather than wait for a worker that is behind, the importer seals the newest batches
    the worker has not started itself (at the end of a list, the last ones): neither
    process idles while the other works. A worker that dies costs nothing but time: its
    batches are sealed here instead."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._in_flight: deque[_Batch] = deque()
        self.sealed_here = 0  # batches sealed in this process rather than the worker

    def submit(self, job: SealJob) -> None:
        pool, future = _submit(self._workers, job) if self._workers else (None, None)
        self._in_flight.append(_Batch(job, pool, future))

    def ready(self) -> list[list[Sealed]]:
        """The batches sealed by now, in order. When more than `AHEAD` wait for the
        worker, the newest is sealed here (or, if the worker has started them all, the
        oldest is waited for)."""
        done = []
        while True:
            while self._in_flight and _done(self._in_flight[0]):
                done.append(self._result(self._in_flight.popleft()))
            if sum(not _done(batch) for batch in self._in_flight) <= AHEAD:
                return done
            if not self._seal_newest_here():
                done.append(self._result(self._in_flight.popleft()))

    def drain(self) -> list[list[Sealed]]:
        while self._seal_newest_here():
            pass
        done = []
        while self._in_flight:
            done.append(self._result(self._in_flight.popleft()))
        return done

    def abandon(self) -> None:
        """Drop what is in flight (the import failed): its results are never read."""
        for batch in self._in_flight:
            if batch.future is not None:
                batch.future.cancel()
        self._in_flight.clear()

    def _seal_newest_here(self) -> bool:
        """Seal here the newest batch the worker has not started, if there is one. The
        worker takes batches in order, so once one cannot be taken back, no older one can."""
        for batch in reversed(self._in_flight):
            if batch.sealed is not None or batch.future is None:
                continue
            if not batch.future.cancel():
                return False
            batch.sealed = seal_batch(batch.job)
            self.sealed_here += 1
            return True
        return False

    def _result(self, batch: _Batch) -> list[Sealed]:
        if batch.sealed is not None:
            return batch.sealed
        if batch.pool is not None and batch.future is not None:
            try:
                return batch.future.result()
            except (BrokenProcessPool, CancelledError):
                if self._workers:
                    log.warning("the sealing worker died; this list is sealed in-process")
                    self._workers = 0
                _forget_pool(batch.pool)
        self.sealed_here += 1
        return seal_batch(batch.job)


def _done(batch: _Batch) -> bool:
    return batch.sealed is not None or batch.future is None or batch.future.done()


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _submit(
    workers: int, job: SealJob
) -> tuple[ProcessPoolExecutor | None, Future[list[Sealed]] | None]:
    """The job sent to the worker pool (and the pool), or None to seal it here: the pool
    cannot take it, or no worker can start."""
    global _pool
    with _pool_lock:
        try:
            if _pool is None:
                _pool = _start_pool(workers)
            return _pool, _pool.submit(seal_batch, job)
        except (BrokenProcessPool, RuntimeError, OSError):
            log.warning("no sealing worker; sealing in the importing process")
            _pool = None
            return None, None


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers are started from a thread of its own that lives as long as
    the pool: a worker is killed when the thread that started it ends (PR_SET_PDEATHSIG
    follows the thread), so not from a request's or a task's thread."""
    # The pool's own threads in this process hand the worker its batches and take the
    # results back; they need the GIL, which the importer holds while it checks rows, and
    # at Python's default 5 ms switch interval the worker spent a third of its time
    # waiting for them (bench/intake.py). This process switches every half millisecond.
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    started: Future[ProcessPoolExecutor] = Future()
    stopped = threading.Event()

    def keep() -> None:
        try:
            pool = ProcessPoolExecutor(
                max_workers=workers,
                # A fresh interpreter, not a fork of one holding database connections.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
            pool.shutdown = _and_set(pool.shutdown, stopped)  # type: ignore[method-assign]
            for warm in [pool.submit(int) for _ in range(workers)]:
                warm.result()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(pool)
        stopped.wait()

    threading.Thread(target=keep, name="sealing-pool", daemon=True).start()
    return started.result()


def _and_set(shutdown: Callable[..., None], stopped: threading.Event) -> Callable[..., None]:
    def shutdown_and_set(*args: Any, **kwargs: Any) -> None:
        try:
            shutdown(*args, **kwargs)
        finally:
            stopped.set()

    return shutdown_and_set


def workers() -> list[int]:
    """Process ids of the live sealing workers."""
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def shutdown() -> None:
    """Stop the worker processes (they start again when needed)."""
    with _pool_lock:
        pool = _pool
    if pool is not None:
        _forget_pool(pool, wait=True)


def _forget_pool(pool: ProcessPoolExecutor, *, wait: bool = False) -> None:
    """Drop `pool` (broken, or shut down) — not a newer one another import started."""
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=wait, cancel_futures=True)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the import it serves (a `kill -9` of it included), and
    leaves Ctrl-C to its importer, which finishes or fails the import as a whole."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        os._exit(1)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
