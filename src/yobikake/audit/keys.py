"""The audit log's keys, behind a small interface.

For now they live in files under YOBIKAKE_KEYS_DIR (default YOBIKAKE_HOME/keys, 0700,
each key 0600); the key-service issue moves them into the key service. What matters is
that the database never holds them: with the MAC key a database administrator could
append events that verify, with the signing key forge checkpoints.
"""

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings


class AuditKeys(Protocol):
    key_id: str

    def mac_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> str: ...

    def signature_valid(self, message: bytes, signature: bytes) -> bool: ...


def _secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(make())
    return path.read_bytes()


class LocalAuditKeys:
    """Keys in files, generated on first use."""

    def __init__(self, directory: Path) -> None:
        self._mac = _secret_file(directory / "audit-mac.key", lambda: os.urandom(32))
        pem = _secret_file(
            directory / "audit-signing.pem",
            lambda: Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("the audit signing key must be Ed25519")
        self._private = private
        self._public: Ed25519PublicKey = private.public_key()
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = "local:" + raw.hex()[:16]

    def mac_key(self) -> bytes:
        return self._mac

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public_key_pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def signature_valid(self, message: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@cache
def _keys_for(directory: str) -> LocalAuditKeys:
    return LocalAuditKeys(Path(directory))


def audit_keys() -> AuditKeys:
    return _keys_for(str(settings.YOBIKAKE_KEYS_DIR))
