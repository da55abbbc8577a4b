"""The audit log's keys, held by the key service (see vault/ports.py).

- The MAC key is a random data key, kept only wrapped by the key service's
  `yobikake-audit-mac` key (the wrapped form is a file in YOBIKAKE_KEYS_DIR), unwrapped into
  this process's memory when first needed. With it a database administrator could
  append events that verify, so the database never holds it.
- Checkpoints are signed by the key service's `yobikake-audit-checkpoints` Ed25519 key;
  with OpenBao the private half never leaves it.
"""

from functools import cache
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings

from yobikake.vault.ports import KeyKind, KeyService
from yobikake.vault.secrets import wrapped_secret
from yobikake.vault.service import key_service

SIGNING_KEY = "yobikake-audit-checkpoints"


class AuditKeys(Protocol):
    key_id: str

    def mac_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> str: ...

    def signature_valid(self, message: bytes, signature: bytes) -> bool: ...


class KeyServiceAuditKeys:
    def __init__(self, keys: KeyService, keys_dir: Path, service_name: str) -> None:
        self._keys = keys
        self._mac = wrapped_secret(keys, keys_dir, "audit-mac")
        self._public: Ed25519PublicKey | None = None
        self.key_id = f"{service_name}:{SIGNING_KEY}"

    def mac_key(self) -> bytes:
        return self._mac.get()

    def sign(self, message: bytes) -> bytes:
        self._keys.create_key(SIGNING_KEY, KeyKind.SIGNING)
        return self._keys.sign(SIGNING_KEY, message)

    def public_key_pem(self) -> str:
        self._keys.create_key(SIGNING_KEY, KeyKind.SIGNING)
        return self._keys.public_key_pem(SIGNING_KEY)

    def signature_valid(self, message: bytes, signature: bytes) -> bool:
        if self._public is None:
            public = load_pem_public_key(self.public_key_pem().encode())
            if not isinstance(public, Ed25519PublicKey):
                return False
            self._public = public
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@cache
def _audit_keys(service: KeyService, keys_dir: str, name: str) -> KeyServiceAuditKeys:
    return KeyServiceAuditKeys(service, Path(keys_dir), name)


def audit_keys() -> AuditKeys:
    return _audit_keys(
        key_service(), str(settings.YOBIKAKE_KEYS_DIR), settings.YOBIKAKE_KEY_SERVICE
    )
