"""The embedded default: a keyring file under the keys directory (0700; the file 0600),
each key's material encrypted with a master key from YOBIKAKE_MASTER_KEY_FILE or
generated beside it on first run.

Honestly: this protects against theft of the database file or a database backup alone.
Whoever can read the keys directory as well can read everything; that is what the
OpenBao adapter, run by another party, is for.
"""

import base64
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.vault.adapters.software import Change, SoftwareKeyService, StoredKey
from yobikake.vault.ports import KeyKind, KeyServiceError


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with a new 0600 file (a fresh temporary name each time,
    so a stray file can never lend it other permissions)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class FileKeyring:
    def __init__(self, path: Path, master_key_file: Path) -> None:
        self._path = path
        self._master_file = master_key_file
        self._master = _aead(master_key(master_key_file))
        self._seen: tuple[int, ...] | None = None

    def _stamp(self) -> tuple[int, ...] | None:
        # Every save replaces the file (a new inode), so the inode, times and size tell
        # whether it was saved since.
        try:
            status = self._path.stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_ctime_ns, status.st_mtime_ns, status.st_size

    def changed(self) -> bool:
        return self._stamp() != self._seen

    def load(self) -> dict[str, StoredKey]:
        try:
            return self._load()
        except InvalidTag:
            pass
        with self._locked():
            return self._load_locked()

    def _load_locked(self) -> dict[str, StoredKey]:
        """`load` for a caller holding the lock (which recovery needs)."""
        try:
            return self._load()
        except InvalidTag:
            pass
        try:
            return self._recover()
        except OSError as exc:
            raise KeyServiceError(f"the keyring cannot be read: {exc}") from exc

    def _recover(self) -> dict[str, StoredKey]:
        """Another process rotated the master key since this one read it; or a rotation
        stopped after the keyring was rewritten and before the new master key took the
        old one's place (then finish it)."""
        pending = _pending(self._master_file)
        for candidate in (self._master_file, pending):
            if not candidate.exists():
                continue
            self._master = _aead(candidate.read_bytes())
            try:
                keys = self._load()
            except InvalidTag:
                continue
            if candidate == pending:
                os.replace(pending, self._master_file)
            return keys
        raise KeyServiceError("the keyring does not open with the master key")

    def _load(self) -> dict[str, StoredKey]:
        self._seen = self._stamp()
        if not self._path.exists():
            return {}
        keys = {}
        for name, entry in json.loads(self._path.read_text()).items():
            versions = [
                self._master.decrypt(sealed[:12], sealed[12:], name.encode())
                for sealed in (base64.b64decode(v) for v in entry["versions"])
            ]
            keys[name] = StoredKey(KeyKind(entry["kind"]), entry["destroyable"], versions)
        return keys

    def update(self, change: Change) -> dict[str, StoredKey]:
        # One process at a time, each starting from what is on disk now: two processes
        # creating keys must not overwrite each other's (that would lose keys for good).
        with self._locked():
            keys = self._load_locked()
            change(keys)
            self._save(keys)
            self._seen = self._stamp()
            return keys

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = os.open(self._path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)

    def rotate_master(self) -> None:
        """Seal the keyring under a new master key. The new key is written beside the old
        one first, so a crash at any step leaves a keyring that opens (see `load`)."""
        with self._locked():
            keys = self._load_locked()
            pending = _pending(self._master_file)
            _write_private(pending, os.urandom(32))
            self._master = _aead(pending.read_bytes())
            self._save(keys)
            self._seen = self._stamp()
            # Another process that opened the keyring meanwhile may have moved the new
            # master key into place already (see `load`).
            with contextlib.suppress(FileNotFoundError):
                os.replace(pending, self._master_file)

    def _save(self, keys: dict[str, StoredKey]) -> None:
        entries = {}
        for name, key in keys.items():
            sealed = []
            for material in key.versions:
                nonce = os.urandom(12)
                sealed.append(
                    base64.b64encode(
                        nonce + self._master.encrypt(nonce, material, name.encode())
                    ).decode()
                )
            entries[name] = {
                "kind": key.kind.value,
                "destroyable": key.destroyable,
                "versions": sealed,
            }
        _write_private(self._path, json.dumps(entries).encode())


def _pending(master_key_file: Path) -> Path:
    return master_key_file.with_name(master_key_file.name + ".next")


def _aead(key: bytes) -> AESGCM:
    if len(key) != 32:
        raise KeyServiceError("the master key must be 32 bytes")
    return AESGCM(key)


def master_key(path: Path) -> bytes:
    """The master key in `path`, generated (0600) on first run."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(path, os.urandom(32))
    return path.read_bytes()


class LocalKeyService(SoftwareKeyService):
    def __init__(self, directory: Path, master_key_file: Path | None = None) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._file = FileKeyring(
            directory / "keyring.json", master_key_file or directory / "master.key"
        )
        super().__init__(self._file)

    def rotate_master(self) -> None:
        self._file.rotate_master()
