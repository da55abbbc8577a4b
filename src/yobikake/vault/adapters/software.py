"""A key service in software: AES-256-GCM wrapping keys and Ed25519 signing keys kept by
a `Keyring` (a file for the local adapter, memory for the fake). Tokens look like
OpenBao's: `sw:v<version>:<base64 nonce+ciphertext>`."""

import base64
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.vault.ports import KeyKind, KeyNotFound, KeyServiceError, Wrapped

PREFIX = "sw"


@dataclass
class StoredKey:
    kind: KeyKind
    destroyable: bool
    versions: list[bytes] = field(default_factory=list)  # raw key material, version = index+1


Change = Callable[[dict[str, StoredKey]], None]


class Keyring(Protocol):
    def load(self) -> dict[str, StoredKey]: ...

    def changed(self) -> bool:
        """Whether another process changed the keys since this one last loaded them."""
        ...

    def update(self, change: Change) -> dict[str, StoredKey]:
        """Apply `change` to the keys as they are now (another process may have changed
        them), store the result and return it."""
        ...


def _new_material(kind: KeyKind) -> bytes:
    if kind is KeyKind.SIGNING:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    return AESGCM.generate_key(bit_length=256)


class SoftwareKeyService:
    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._keys = keyring.load()

    def _key(self, name: str, kind: KeyKind, version: int = 0) -> StoredKey:
        if self._keyring.changed():
            # Created, rotated or destroyed by another process: a key shredded there must
            # not keep unwrapping here.
            self._keys = self._keyring.load()
        key = self._keys.get(name)
        if key is None or version > len(key.versions):
            self._keys = self._keyring.load()
            key = self._keys.get(name)
        if key is None or not key.versions:
            raise KeyNotFound(name)
        if key.kind is not kind:
            raise KeyServiceError(f"{name} is a {key.kind} key")
        return key

    def create_key(self, name: str, kind: KeyKind, *, destroyable: bool = False) -> None:
        if name in self._keys:
            return

        def add(keys: dict[str, StoredKey]) -> None:
            keys.setdefault(name, StoredKey(kind, destroyable, [_new_material(kind)]))

        self._keys = self._keyring.update(add)

    def wrap(self, name: str, plaintexts: Sequence[bytes], *, aad: bytes = b"") -> list[Wrapped]:
        key = self._key(name, KeyKind.WRAPPING)
        version = len(key.versions)
        aead = AESGCM(key.versions[-1])
        result = []
        for plaintext in plaintexts:
            nonce = os.urandom(12)
            sealed = nonce + aead.encrypt(nonce, plaintext, name.encode() + b"\0" + aad)
            token = f"{PREFIX}:v{version}:{base64.b64encode(sealed).decode()}"
            result.append(Wrapped(name, token))
        return result

    def unwrap(self, wrapped: Sequence[Wrapped], *, aad: bytes = b"") -> list[bytes]:
        result = []
        for item in wrapped:
            prefix, _, rest = item.token.partition(":")
            version, _, body = rest.partition(":")
            if prefix != PREFIX or not version.startswith("v") or not version[1:].isdigit():
                raise KeyServiceError(f"not a token of {item.key_name}")
            number = int(version[1:])
            key = self._key(item.key_name, KeyKind.WRAPPING, number)
            if not 1 <= number <= len(key.versions):
                raise KeyServiceError(f"{item.key_name} has no version {number}")
            try:
                sealed = base64.b64decode(body)
                plaintext = AESGCM(key.versions[number - 1]).decrypt(
                    sealed[:12], sealed[12:], item.key_name.encode() + b"\0" + aad
                )
            except Exception as exc:
                raise KeyServiceError(f"cannot unwrap with {item.key_name}") from exc
            result.append(plaintext)
        return result

    def rewrap(self, wrapped: Sequence[Wrapped], *, aad: bytes = b"") -> list[Wrapped]:
        by_name: dict[str, list[int]] = {}
        for index, item in enumerate(wrapped):
            by_name.setdefault(item.key_name, []).append(index)
        result: list[Wrapped | None] = [None] * len(wrapped)
        for name, indexes in by_name.items():
            plaintexts = self.unwrap([wrapped[i] for i in indexes], aad=aad)
            for i, new in zip(indexes, self.wrap(name, plaintexts, aad=aad), strict=True):
                result[i] = new
        return [w for w in result if w is not None]

    def rotate(self, name: str) -> int:
        def add_version(keys: dict[str, StoredKey]) -> None:
            if name not in keys:
                raise KeyNotFound(name)
            keys[name].versions.append(_new_material(keys[name].kind))

        self._keys = self._keyring.update(add_version)
        return len(self._keys[name].versions)

    def destroy(self, name: str) -> None:
        def remove(keys: dict[str, StoredKey]) -> None:
            if name not in keys:
                raise KeyNotFound(name)
            if not keys[name].destroyable:
                raise KeyServiceError(f"{name} was not created destroyable")
            del keys[name]

        self._keys = self._keyring.update(remove)

    def _signer(self, name: str) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self._key(name, KeyKind.SIGNING).versions[-1])

    def sign(self, name: str, message: bytes) -> bytes:
        return self._signer(name).sign(message)

    def public_key_pem(self, name: str) -> str:
        public = self._signer(name).public_key()
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
