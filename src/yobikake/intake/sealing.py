"""Sealing a list's rows: every personal field under a fresh batch key (wrapped to the
list's public key by the writer, vault/batches.py; only the custodian opens it), the
blind indexes under the insurer's index key, a batch at a time — in this process, or in
a worker process beside it while this one reads and checks the next rows.

Imports no Django, so a worker starts without it. A worker holds a batch key only while
it seals that batch, and dies with the process that started it.
"""

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.custody import sealing
from yobikake.custody.protocol import field_aad_prefix
from yobikake.jp import normalize
from yobikake.synth.people import Person
from yobikake.vault import records
from yobikake.vault.blind import Indexer, IndexKind

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
# duplicates (insured number, kana + birth date), looked up for every batch a list
# import stores. Do-not-call, the inquiry desk, the phone directory's matching and
# scoping read the others with their row, or a list's all at once.
LOOKED_UP = ("idx_insured_number", "idx_kana_birth")
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
    """A batch of one list's people, with the keys to seal and index them: the batch's
    own key (`batch_id` names it in every value) and the insurer's index key."""

    batch_key: bytes
    batch_id: int
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
        keys = (
            self.batch_key,
            self.batch_id,
            self.index_key,
            self.list_id,
            self.insurer_id,
            self.year_end,
        )
        return (_job_from, (*keys, flat))


def _job_from(
    batch_key: bytes,
    batch_id: int,
    index_key: bytes,
    list_id: int,
    insurer_id: int,
    year_end: date,
    flat: list[tuple[Any, ...]],
) -> SealJob:
    people = [(row, Person(*fields)) for row, *fields in flat]
    return SealJob(batch_key, batch_id, index_key, list_id, insurer_id, year_end, people)


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


_INDEX_KINDS = tuple(INDEX_COLUMNS)


def _aad_prefixes(list_id: int, insurer_id: int) -> tuple[bytes, ...]:
    """Each sealed column's associated data up to the row id, which comes last."""
    return tuple(field_aad_prefix(TABLE, c, list_id, insurer_id) for c in SEALED_FIELDS)


def seal_batch(job: SealJob) -> list[Sealed]:
    """Each row of the batch as (row, identity, sex, age, its values as `COLUMNS`)."""
    aead = AESGCM(job.batch_key)
    prefixes = _aad_prefixes(job.list_id, job.insurer_id)
    indexer = Indexer(job.index_key)
    first_id = job.list_id * ROWS_PER_LIST
    rows: list[Sealed] = []
    for row, person in job.people:
        target_id = first_id + row
        birth = person.birth_date
        sealed = sealing.seal_fields(
            aead,
            prefixes,
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
            job.batch_id,
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
            *[_blob(value) for value in sealed],
            *[_blob(indexed.get(kind)) for kind in _INDEX_KINDS],
        )
        # The identity is the row's insured-number or kana + birth index when it has one
        # (`identity` computes the same parts): not hashed twice.
        same = indexed.get(IndexKind.INSURED_NUMBER) or indexed.get(IndexKind.KANA_BIRTH)
        if same is None:
            kind, parts_of_identity = identity(person, age)
            same = indexer.value(kind, *parts_of_identity)
        rows.append((row, same, person.sex, age, values))
    return rows


def _blob(value: bytes | None) -> bytearray | None:
    """A value for a BLOB column as the importer's driver takes it fastest: Python's
    sqlite3 binds a bytearray as it is, but first offers bytes to its adapters (its
    `need_adapt`): 4 µs more a row of fourteen blobs (docs/benchmarks.md, intake)."""
    return None if value is None else bytearray(value)


def _postal_area(postal_code: str) -> str:
    """The first three digits of a postal code (how validation writes it: 500-8701)."""
    head = postal_code[:3]
    if head.isdigit() and head.isascii():
        return head
    return "".join(c for c in postal_code if c.isdigit())[:3]


# Small batches keep the worker busy while the importer checks the next rows. The worker
# is sent at most SENT of them at a time (one to seal, two waiting: with fewer it ran
# dry while the importer was writing), so that the rest can still be sealed here. Up
# to AHEAD wait, in all, before the importer seals one itself: with 4 it took work the
# worker had time for (bench/intake.py).
BATCH = 250
AHEAD = 8
SENT = 3


@dataclass
class _Batch:
    job: SealJob
    future: "Future[bytes] | None" = None  # sent to the worker: its pickled rows
    sealed: list[Sealed] | None = None  # sealed in this process


class Sealer:
    """Seals batches in order, in a worker process when there is one: `submit` a job,
    then `ready()` and `drain()` give the sealed rows back in the order submitted.

    The importer sends the worker its batches itself, `SENT` at a time, and rather
    than wait for a worker that is behind, seals the newest batches it has not sent (at
    the end of a list, the last ones): neither process idles while the other works. A
    worker that dies costs nothing but time: its batches are sealed here instead."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._in_flight: deque[_Batch] = deque()
        self.sealed_here = 0  # batches sealed in this process rather than the worker

    def submit(self, job: SealJob) -> None:
        self._in_flight.append(_Batch(job))
        self._send()

    def ready(self) -> list[list[Sealed]]:
        """The batches sealed by now, in order. When more than `AHEAD` are not, the
        newest unsent one is sealed here (or, if all are sent, the oldest waited for)."""
        done = []
        while True:
            self._send()
            while self._in_flight and self._done(self._in_flight[0]):
                done.append(self._result(self._in_flight.popleft()))
            if sum(not self._done(batch) for batch in self._in_flight) <= AHEAD:
                return done
            if not self._seal_newest_here():
                done.append(self._result(self._in_flight.popleft()))

    def drain(self) -> Iterator[list[Sealed]]:
        """Every batch, in order, each as soon as it is sealed, so that the caller
        stores one while the worker seals the next: the worker seals from the oldest,
        this process from the newest, until they meet."""
        while self._in_flight:
            self._send()
            if self._done(self._in_flight[0]) or not self._seal_newest_here():
                yield self._result(self._in_flight.popleft())

    def abandon(self) -> None:
        """Drop what is in flight (the import failed): its results are never read."""
        self._in_flight.clear()

    def _done(self, batch: _Batch) -> bool:
        if batch.sealed is not None:
            return True
        if batch.future is None:
            return not self._workers  # to be sealed here when its turn comes
        return batch.future.done()

    def _send(self) -> None:
        """Send the worker the oldest unsent batches, up to `SENT` unfinished."""
        if not self._workers:
            return
        sent = sum(b.future is not None and not b.future.done() for b in self._in_flight)
        for batch in self._in_flight:
            if sent >= SENT:
                return
            if batch.future is None and batch.sealed is None:
                batch.future = _send_to_worker(self._workers, batch.job)
                if batch.future is None:
                    self._workers = 0  # no worker: seal the rest here
                    return
                sent += 1

    def _seal_newest_here(self) -> bool:
        """Seal here the newest batch not sent to the worker, if there is one."""
        for batch in reversed(self._in_flight):
            if batch.future is None and batch.sealed is None:
                batch.sealed = seal_batch(batch.job)
                self.sealed_here += 1
                return True
        return False

    def _result(self, batch: _Batch) -> list[Sealed]:
        if batch.sealed is not None:
            return batch.sealed
        if batch.future is not None:
            try:
                data = batch.future.result()
                if data:
                    rows: list[Sealed] = pickle.loads(data)  # noqa: S301 - our worker's
                    return rows
                # The worker could not seal it: sealing it here raises what it raised.
            except BrokenProcessPool:
                if self._workers:
                    log.warning("the sealing worker died; this list is sealed in-process")
                    self._workers = 0
                _forget_pool(broken=True)
        self.sealed_here += 1
        return seal_batch(batch.job)


class _Worker:
    """A sealing process and the importer's end of its pipe. The importing thread sends
    it batches itself; a thread of ours only reads what comes back. (Through
    `ProcessPoolExecutor`, two threads of the importer had to take the GIL from it for
    every batch, and the worker waited for them a third of the time: bench/intake.py.)"""

    def __init__(self, context: Any) -> None:
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child, os.getpid()), name="sealing-worker", daemon=True
        )
        self.process.start()
        child.close()
        self._waiting: deque[Future[bytes]] = deque()  # in the order sent
        self._lock = threading.Lock()
        self.broken = False
        threading.Thread(target=self._read, name="sealing-results", daemon=True).start()

    def unfinished(self) -> int:
        return len(self._waiting)

    def submit(self, job: SealJob) -> "Future[bytes]":
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        future: Future[bytes] = Future()
        with self._lock:
            if self.broken:
                raise BrokenProcessPool("the sealing worker died")
            self._waiting.append(future)
            try:
                self._conn.send_bytes(data)
            except BaseException as exc:
                # A send cut short (a dead worker, or an exception raised in this thread
                # mid-write) leaves the pipe out of step: the worker would read the next
                # message as this one's rest. This worker is done; its reader fails
                # whatever waits on it.
                self.broken = True
                self.process.kill()
                if isinstance(exc, OSError):
                    raise BrokenProcessPool("the sealing worker died") from exc
                raise
        return future

    def _read(self) -> None:
        try:
            while True:
                data = self._conn.recv_bytes()
                self._waiting.popleft().set_result(data)
        except (EOFError, OSError):
            pass
        finally:  # whatever ended it, nothing may wait for a reply that will not come
            with self._lock:
                self.broken = True
                self.process.kill()  # if it still lives
                while self._waiting:
                    self._waiting.popleft().set_exception(
                        BrokenProcessPool("the sealing worker died")
                    )

    def stop(self, *, wait: bool) -> None:
        """Ask the worker to exit (an empty message) and, with `wait`, wait for it.
        Without, the end of the pool's thread kills it (PR_SET_PDEATHSIG), queued
        batches and all: their importers seal them themselves."""
        with self._lock, contextlib.suppress(OSError):  # dead already
            if not self.broken:  # else its pipe may be out of step, and it is killed
                self._conn.send_bytes(b"")
        if wait:
            self.process.join()


def _serve(conn: Any, parent: int) -> None:
    """The worker: seal each batch that comes, until the importer closes the pipe."""
    _die_with_parent(parent)
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            return
        if not data:
            return
        job = pickle.loads(data)  # noqa: S301 - from the importer
        try:
            reply = pickle.dumps(seal_batch(job), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # the importer seals it again, and raises it
            reply = b""  # no details: an exception's text may quote a value
        conn.send_bytes(reply)


class _Pool:
    """The sealing workers of this process, started from a thread of their own that
    lives as long as they do: a worker is killed when the thread that started it ends
    (PR_SET_PDEATHSIG follows the thread), so not from a request's or a task's thread."""

    def __init__(self, workers: int) -> None:
        started: Future[list[_Worker]] = Future()
        self._stopped = threading.Event()

        def keep() -> None:
            try:
                # A fresh interpreter, not a fork of one holding database connections.
                context = multiprocessing.get_context("spawn")
                started.set_result([_Worker(context) for _ in range(workers)])
            except BaseException as exc:
                started.set_exception(exc)
                return
            self._stopped.wait()

        threading.Thread(target=keep, name="sealing-pool", daemon=True).start()
        self._workers = started.result()

    def submit(self, job: SealJob) -> "Future[bytes]":
        worker = min(self._workers, key=_Worker.unfinished)
        return worker.submit(job)

    @property
    def broken(self) -> bool:
        return any(worker.broken for worker in self._workers)

    def stop(self, *, wait: bool) -> None:
        for worker in self._workers:
            worker.stop(wait=wait)
        self._stopped.set()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _send_to_worker(workers: int, job: SealJob) -> "Future[bytes] | None":
    """The job sent to a sealing worker, or None to seal it here: no worker can start."""
    global _pool
    with _pool_lock:
        for _attempt in range(2):  # a worker found dead is replaced once
            try:
                if _pool is None:
                    _pool = _Pool(workers)
                return _pool.submit(job)
            except (BrokenProcessPool, RuntimeError, OSError):
                pool, _pool = _pool, None
                if pool is not None:
                    pool.stop(wait=False)
        log.warning("no sealing worker; sealing in the importing process")
        return None


def workers() -> list[int]:
    """Process ids of the live sealing workers."""
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


def shutdown() -> None:
    """Stop the worker processes (they start again when needed)."""
    _forget_pool(wait=True)


def _forget_pool(*, wait: bool = False, broken: bool = False) -> None:
    """Stop the pool (with `broken`, only if one of its workers died: not a newer pool
    another import started)."""
    global _pool
    with _pool_lock:
        pool = _pool
        if pool is None or (broken and not pool.broken):
            return
        _pool = None
    pool.stop(wait=wait)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the import it serves (a `kill -9` of it included), and
    leaves Ctrl-C to its importer, which finishes or fails the import as a whole."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        os._exit(1)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
