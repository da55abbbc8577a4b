"""The sealing scheme both domains share (protocol.py describes it): the application
seals with `seal_batch_key` and `seal_field` (or `seal_fields`, the importer's fast
path), only the custodian opens with `open_field`. One implementation, so the importer,
the tests and the custodian cannot drift apart.

A sealed field is `FORMAT + batch id (8 bytes, big-endian, unsigned) + nonce (12 bytes)
+ AES-256-GCM ciphertext and tag`, under associated data `protocol.field_aad(...)`.

The batch id names the batch key the value was sealed under, because one row's values
need not share one: the importer seals a batch of rows under one key, but a value sealed
later (a researched phone number, a call note) gets a fresh key of its own. The
application keeps each batch's wrapped key under its id and sends the custodian the ones
a request's values name (`batch_of`). The id is not secret and not authenticated: a
value whose id is changed names another key, under which it does not open.
"""

import os
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = b"\x02"  # the first byte of every sealed value, for a future change of scheme
BATCH_ID_BYTES = 8
MAX_BATCH_ID = 2 ** (8 * BATCH_ID_BYTES) - 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
_HEADER = len(FORMAT) + BATCH_ID_BYTES
# RSA-OAEP with SHA-256 for the hash and MGF1, no label: what OpenBao's transit engine
# decrypts (keyring.py).
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class CannotOpen(Exception):
    """The value does not open with this key at this place: tampered, moved to another
    row, column, list or insurer, or not a sealed value at all."""


@lru_cache(maxsize=256)
def _public_key(public_pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def wrap_batch_key(public_pem: str, batch_key: bytes) -> bytes:
    """`batch_key` wrapped to a list's public key."""
    return _public_key(public_pem).encrypt(batch_key, OAEP)


def seal_batch_key(public_pem: str) -> tuple[bytes, bytes]:
    """A fresh AES-256-GCM batch key and the same key wrapped to the list's public key
    (`public_pem`). The importer seals one batch of rows with the first, stores the
    second beside them under the batch's id, and forgets the first."""
    batch_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    return batch_key, wrap_batch_key(public_pem, batch_key)


def _header(batch_id: int) -> bytes:
    if not 0 <= batch_id <= MAX_BATCH_ID:
        raise ValueError(f"a batch id is an unsigned 64-bit number, not {batch_id}")
    return FORMAT + batch_id.to_bytes(BATCH_ID_BYTES, "big")


def seal_field(aead: AESGCM, aad: bytes, plaintext: str, batch_id: int) -> bytes:
    """`plaintext` sealed under the batch key `aead` (batch `batch_id`), at the place
    `aad` names."""
    nonce = os.urandom(NONCE_BYTES)
    return _header(batch_id) + nonce + aead.encrypt(nonce, plaintext.encode(), aad)


def seal_fields(
    aead: AESGCM,
    aad_prefixes: Sequence[bytes],
    row_suffix: bytes,
    values: Sequence[str],
    batch_id: int,
) -> list[bytes | None]:
    """`seal_field` for each of a row's `values`, under associated data
    `prefix + row_suffix` (`protocol.field_aad_prefix(...)` and the row id); None for an
    empty value. The importer's fast path: the nonces are drawn at once."""
    header = _header(batch_id)
    nonces = os.urandom(NONCE_BYTES * len(values))
    encrypt = aead.encrypt
    sealed: list[bytes | None] = []
    for i, (prefix, value) in enumerate(zip(aad_prefixes, values, strict=True)):
        if value:
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            sealed.append(header + nonce + encrypt(nonce, value.encode(), prefix + row_suffix))
        else:
            sealed.append(None)
    return sealed


def batch_of(sealed: bytes) -> int:
    """The id of the batch key `sealed` names; `CannotOpen` for what is not a sealed
    value."""
    if (
        not isinstance(sealed, bytes)
        or not sealed.startswith(FORMAT)
        or len(sealed) < _HEADER + NONCE_BYTES + TAG_BYTES
    ):
        raise CannotOpen("not a sealed value")
    return int.from_bytes(sealed[len(FORMAT) : _HEADER], "big")


def open_field(aead: AESGCM, aad: bytes, sealed: bytes) -> str:
    """The plaintext of `sealed` under the batch key `aead` at the place `aad` names, or
    `CannotOpen`."""
    batch_of(sealed)  # the same check of its form
    try:
        plaintext = aead.decrypt(
            sealed[_HEADER : _HEADER + NONCE_BYTES], sealed[_HEADER + NONCE_BYTES :], aad
        )
    except InvalidTag:
        raise CannotOpen("does not open at this place") from None
    return plaintext.decode()
