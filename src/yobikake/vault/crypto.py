"""Envelope encryption of fields: each list has its own AES-256-GCM data key, kept in the
database only wrapped by the key service. Every value is sealed with associated data
naming its table, column and row, so ciphertext cannot be copied to another row or
column and still open."""

import os
import threading
import time
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.vault.ports import KeyService, Wrapped

NONCE_BYTES = 12
FORMAT = b"\x01"  # the first byte of every sealed value, for a future change of scheme


class CannotOpen(Exception):
    """The value does not open with this key at this place: tampered, moved, or its list
    shredded."""


def field_aad(table: str, column: str, row_id: int) -> bytes:
    """The associated data that binds a sealed value to its table, column and row."""
    return f"yobikake:{table}:{column}:{row_id}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class FieldCipher:
    """Seals and opens field values with one data key (a list's). Made once per list
    load or reveal: setting up the cipher costs more than sealing one value."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, aad: bytes, plaintext: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT + nonce + self._aead.encrypt(nonce, plaintext.encode(), aad)

    def seal_fields(
        self, aad_prefixes: Sequence[bytes], row_suffix: bytes, values: Sequence[str]
    ) -> list[bytes | None]:
        """`seal` for each of a row's `values`, under associated data `prefix + row_suffix`
        (`field_aad` up to the row id, then the id); None for an empty value, as
        `records.seal_row` stores it. The nonces are drawn at once."""
        nonces = os.urandom(NONCE_BYTES * len(values))
        encrypt = self._aead.encrypt
        sealed: list[bytes | None] = []
        for i, (prefix, value) in enumerate(zip(aad_prefixes, values, strict=True)):
            if value:
                nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
                sealed.append(FORMAT + nonce + encrypt(nonce, value.encode(), prefix + row_suffix))
            else:
                sealed.append(None)
        return sealed

    def open(self, aad: bytes, sealed: bytes) -> str:
        place = aad.decode()  # names a table, column and row: no one's data
        if not sealed.startswith(FORMAT) or len(sealed) < 1 + NONCE_BYTES + 16:
            raise CannotOpen(f"{place}: not a sealed value")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, aad).decode()
        except InvalidTag:
            raise CannotOpen(place) from None


class DataKeyCache:
    """Unwrapped data keys, in this process's memory only, each for `ttl` seconds.
    Unwrapping asks the key service, which fails closed when it is down."""

    def __init__(
        self, keys: KeyService, ttl: float = 300, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keys = keys
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str, bytes], tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, wrapped: Wrapped, *, aad: bytes) -> bytes:
        slot = (wrapped.key_name, wrapped.token, aad)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(slot)
            if hit is not None and hit[0] > now:
                return hit[1]
        key = self._keys.unwrap([wrapped], aad=aad)[0]
        with self._lock:
            self._cache[slot] = (now + self._ttl, key)
        return key

    def forget(self, key_name: str | None = None) -> None:
        """Drop cached keys (all, or those wrapped by one key: after shredding it)."""
        with self._lock:
            for slot in [s for s in self._cache if key_name in (None, s[0])]:
                del self._cache[slot]
