"""A file uploaded for import waits for its background task sealed: AES-256-GCM in 1 MB
chunks under a fresh key that the key service wraps. The task opens it into a private
temporary file, imports it and removes both. The original is never kept."""

import hashlib
import os
import secrets
import struct
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

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


def seal_upload(chunks: Iterable[bytes]) -> tuple[str, str]:
    """Store the file's bytes sealed; returns the upload's id and the file's SHA-256."""
    upload_id = secrets.token_hex(16)
    keys = key_service()
    keys.create_key(KEY, KeyKind.WRAPPING)
    data_key = new_data_key()
    token = keys.wrap(KEY, [data_key], aad=upload_id.encode())[0].token.encode()
    aead = AESGCM(data_key)
    path = _directory() / f"{upload_id}.sealed"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(struct.pack(">H", len(token)) + token)
        pending: bytes | None = None
        index = 0
        digest = hashlib.sha256()
        for chunk in _rechunk(chunks):
            digest.update(chunk)
            if pending is not None:
                out.write(_seal(aead, upload_id, index, pending, last=False))
                index += 1
            pending = chunk
        out.write(_seal(aead, upload_id, index, pending or b"", last=True))
    return upload_id, digest.hexdigest()


def _rechunk(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= CHUNK:
            yield buffer[:CHUNK]
            buffer = buffer[CHUNK:]
    if buffer:
        yield buffer


def _seal(aead: AESGCM, upload_id: str, index: int, data: bytes, *, last: bool) -> bytes:
    nonce = os.urandom(12)
    body = aead.encrypt(nonce, data, _aad(upload_id, index, last))
    return struct.pack(">I", len(body)) + nonce + body


@contextmanager
def opened_upload(upload_id: str) -> Iterator[Path]:
    """The upload's plaintext in a private temporary file, for the length of the block;
    the sealed file and the temporary one are both gone afterwards."""
    sealed = _directory() / f"{upload_id}.sealed"
    fd, name = tempfile.mkstemp(dir=_directory(), prefix=".open-")
    try:
        with sealed.open("rb") as src, os.fdopen(fd, "wb") as out:
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
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
        sealed.unlink(missing_ok=True)


def discard_upload(upload_id: str) -> None:
    (_directory() / f"{upload_id}.sealed").unlink(missing_ok=True)
