"""The embedded default: a keyring file under the keys directory (0700; the file 0600),
each key's material encrypted with a master key from YOBIKAKE_MASTER_KEY_FILE or
generated beside it on first run.

Honestly: this protects against theft of the database file or a database backup alone.
Whoever can read the keys directory as well can read everything; that is what the
OpenBao adapter, run by another party, is for.
"""

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.vault.adapters.software import SoftwareKeyService, StoredKey
from yobikake.vault.ports import KeyKind, KeyServiceError


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FileKeyring:
    def __init__(self, path: Path, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise KeyServiceError("the master key must be 32 bytes")
        self._path = path
        self._master = AESGCM(master_key)

    def load(self) -> dict[str, StoredKey]:
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

    def save(self, keys: dict[str, StoredKey]) -> None:
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


def master_key(path: Path) -> bytes:
    """The master key in `path`, generated (0600) on first run."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(path, os.urandom(32))
    return path.read_bytes()


class LocalKeyService(SoftwareKeyService):
    def __init__(self, directory: Path, master_key_file: Path | None = None) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = master_key(master_key_file or directory / "master.key")
        super().__init__(FileKeyring(directory / "keyring.json", key))
