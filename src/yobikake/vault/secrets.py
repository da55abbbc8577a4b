"""Secrets the application holds in memory but stores only wrapped by the key service:
MAC keys for the audit log and for authorization state."""

import os
import threading
from functools import cache
from pathlib import Path

from yobikake.vault.ports import KeyKind, KeyService, Wrapped


class WrappedSecret:
    """A 32-byte secret kept on disk only as wrapped by `wrapping_key` (bound to `name`),
    generated on first use and unwrapped once per process."""

    def __init__(self, keys: KeyService, wrapping_key: str, path: Path, name: str) -> None:
        self._keys = keys
        self._wrapping_key = wrapping_key
        self._path = path
        self._aad = name.encode()
        self._value: bytes | None = None
        self._lock = threading.Lock()

    def get(self) -> bytes:
        with self._lock:
            if self._value is None:
                self._value = self._unwrap_or_create()
            return self._value

    def _unwrap_or_create(self) -> bytes:
        self._keys.create_key(self._wrapping_key, KeyKind.WRAPPING)
        if self._path.exists():
            token = self._path.read_text().strip()
            return self._keys.unwrap([Wrapped(self._wrapping_key, token)], aad=self._aad)[0]
        secret = os.urandom(32)
        wrapped = self._keys.wrap(self._wrapping_key, [secret], aad=self._aad)[0]
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(wrapped.token)
        return secret


@cache
def _cached(keys: KeyService, wrapping_key: str, path: str, name: str) -> WrappedSecret:
    return WrappedSecret(keys, wrapping_key, Path(path), name)


def wrapped_secret(keys: KeyService, keys_dir: Path, name: str) -> WrappedSecret:
    """The process-wide secret `name`, wrapped by the key service's `yobikake-<name>` key
    and stored as `<keys_dir>/<name>.wrapped`."""
    return _cached(keys, f"yobikake-{name}", str(keys_dir / f"{name}.wrapped"), name)
