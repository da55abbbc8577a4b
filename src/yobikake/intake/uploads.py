"""A file uploaded for import waits for its background task sealed: AES-256-GCM in 1 MB
chunks under a fresh key that the key service wraps. The task opens it into memory (an
anonymous file with no name on any file system), imports it, and lets it go; the sealed
file is removed as it is opened. The original is never kept, nor ever written in the
clear, even by a process killed part-way."""

import hashlib
import os
import secrets
import shutil
import struct
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from yobikake.vault.crypto import new_data_key
from yobikake.vault.ports import KeyKind, Wrapped
from yobikake.vault.service import key_service

KEY = "yobikake-uploads"
CHUNK = 1 << 20


def _directory() -> Path:
    path = Path(settings.YOBIKAKE_HOME) / "uploads"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _aad(upload_id: str, index: int, last: bool) -> bytes:
    return f"upload:{upload_id}:{index}:{int(last)}".encode()


class SealedWriter:
    """Seals bytes as they come, 1 MB at a time; `close` returns the upload's id and the
    file's SHA-256, `discard` removes what was written."""

    def __init__(self) -> None:
        self.upload_id = secrets.token_hex(16)
        keys = key_service()
        keys.create_key(KEY, KeyKind.WRAPPING)
        data_key = new_data_key()
        token = keys.wrap(KEY, [data_key], aad=self.upload_id.encode())[0].token.encode()
        self._aead = AESGCM(data_key)
        self._path = _directory() / f"{self.upload_id}.sealed"
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._out = os.fdopen(fd, "wb")
        self._out.write(struct.pack(">H", len(token)) + token)
        self._buffer = b""
        self._index = 0
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self._buffer += data
        # Hold back the last full chunk: only at `close` is it known to be the last.
        while len(self._buffer) > CHUNK:
            self._emit(self._buffer[:CHUNK], last=False)
            self._buffer = self._buffer[CHUNK:]

    def _emit(self, data: bytes, *, last: bool) -> None:
        self._out.write(_seal(self._aead, self.upload_id, self._index, data, last=last))
        self._index += 1

    def close(self) -> tuple[str, str]:
        self._emit(self._buffer, last=True)
        self._out.close()
        return self.upload_id, self._digest.hexdigest()

    def discard(self) -> None:
        self._out.close()
        self._path.unlink(missing_ok=True)


def seal_upload(chunks: Iterable[bytes]) -> tuple[str, str]:
    """Store the file's bytes sealed; returns the upload's id and the file's SHA-256."""
    writer = SealedWriter()
    for chunk in chunks:
        writer.write(chunk)
    return writer.close()


def _seal(aead: AESGCM, upload_id: str, index: int, data: bytes, *, last: bool) -> bytes:
    nonce = os.urandom(12)
    body = aead.encrypt(nonce, data, _aad(upload_id, index, last))
    return struct.pack(">I", len(body)) + nonce + body


@contextmanager
def opened_upload(upload_id: str) -> Iterator[Path]:
    """The upload's plaintext for the length of the block, as a path that only this
    process can open: `/proc/self/fd/N` of an anonymous in-memory file (memfd), which no
    directory names and which ends with the process, however it ends. The sealed file
    is removed as soon as it is open, so a kill leaves nothing of the upload on disk."""
    sealed = _directory() / f"{upload_id}.sealed"
    fd = os.memfd_create("upload", os.MFD_CLOEXEC)
    try:
        with sealed.open("rb") as src, open(fd, "wb", closefd=False) as out:
            sealed.unlink()
            (length,) = struct.unpack(">H", src.read(2))
            wrapped = Wrapped(KEY, src.read(length).decode())
            aead = AESGCM(key_service().unwrap([wrapped], aad=upload_id.encode())[0])
            index = 0
            while header := src.read(4):
                (size,) = struct.unpack(">I", header)
                nonce, body = src.read(12), src.read(size)
                last = not src.peek(1)
                out.write(aead.decrypt(nonce, body, _aad(upload_id, index, last)))
                index += 1
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
        sealed.unlink(missing_ok=True)


def discard_upload(upload_id: str) -> None:
    (_directory() / f"{upload_id}.sealed").unlink(missing_ok=True)


# A sealed upload younger than this may belong to a request that has not queued its task.
LEFTOVER_AFTER = 3600


def remove_leftovers(waiting: Collection[str]) -> list[str]:
    """Clear the upload store of what no task will read: every file that is not a
    sealed upload (the plaintext copies that uploads were once opened into, which a
    killed process left), and sealed uploads older than an hour that no task in
    `waiting` (their upload ids) will open. Returns the names removed."""
    removed = []
    cutoff = time.time() - LEFTOVER_AFTER
    for path in _directory().iterdir():
        upload_id = path.name.removesuffix(".sealed")
        sealed = path.suffix == ".sealed" and path.is_file() and not path.is_symlink()
        if sealed and (upload_id in waiting or path.stat().st_mtime > cutoff):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


class SealedUploadedFile(UploadedFile):
    """What the view gets for an uploaded list: its name and size, and the id of the
    sealed copy — never the bytes."""

    def __init__(self, name: str, size: int, upload_id: str, sha256: str) -> None:
        super().__init__(file=None, name=name, size=size)
        self.upload_id = upload_id
        self.sha256 = sha256

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        raise ValueError("a sealed upload is read only by its import task")


class SealingUploadHandler(FileUploadHandler):
    """Seals an uploaded file as it arrives, so its plaintext never lands on disk, and
    stops reading at YOBIKAKE_UPLOAD_MAX_MB (the request then has no file, and
    `request.upload_too_large` says why)."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._writer = SealedWriter()
        self._received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._received += len(raw_data)
        if self._received > settings.YOBIKAKE_UPLOAD_MAX_MB * 1024 * 1024:
            self._writer.discard()
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        self._writer.write(raw_data)

    def file_complete(self, file_size: int) -> SealedUploadedFile:
        upload_id, sha256 = self._writer.close()
        return SealedUploadedFile(self.file_name, file_size, upload_id, sha256)


class RowProgress:
    """How many rows of an uploaded file its background task has got through, in the
    cache, for the page that follows it (list imports, leak scoping)."""

    def __init__(self, job: str, job_id: int) -> None:
        self._key = f"{job}:{job_id}:rows"

    def __call__(self, rows: int) -> None:
        cache.set(self._key, rows, timeout=3600)

    @property
    def rows(self) -> int:
        return int(cache.get(self._key) or 0)
