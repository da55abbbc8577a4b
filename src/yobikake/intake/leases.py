"""Whether the process running a background job still lives. The job holds an exclusive
lock (flock) on a file of its own under YOBIKAKE_HOME/run for as long as it runs; the
kernel drops the lock when the process ends, however it ends, `kill -9` included. A job
recorded as running whose lock can be taken has lost its process.

The lock files are empty: they say which jobs run, never what they read. The check holds
on one host (the one whose YOBIKAKE_HOME the web server, the worker and the command line
share, as the sealed uploads already require)."""

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

_held: dict[Path, tuple[int, int]] = {}  # lock file → (descriptor, depth)
_guard = threading.Lock()


def _directory() -> Path:
    path = Path(settings.YOBIKAKE_HOME) / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _path(job: str, job_id: int) -> Path:
    return _directory() / f"{job.replace(':', '-')}-{int(job_id)}.lock"


@contextmanager
def holding(job: str, job_id: int) -> Iterator[None]:
    """Hold the job's lock for the length of the block (again, within a block that
    already holds it: the task holds it while it opens the upload, and the import it
    calls takes it too)."""
    path = _path(job, job_id)
    with _guard:
        fd, depth = _held.get(path, (-1, 0))
        if not depth:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RuntimeError(f"{job} {job_id} is running in another process") from None
        _held[path] = (fd, depth + 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held.pop(path)
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                path.unlink(missing_ok=True)
                os.close(fd)


@contextmanager
def if_abandoned(job: str, job_id: int) -> Iterator[bool]:
    """True inside the block when no process holds the job's lock; the lock is then held
    here for the block's length, so no process can take the job up meanwhile."""
    path = _path(job, job_id)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)
