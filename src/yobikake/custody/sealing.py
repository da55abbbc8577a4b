"""The sealing scheme both domains share (protocol.py describes it): the application
seals with `seal_batch_key` and `seal_field`, only the custodian opens with
`open_field`. One implementation, so the importer, the tests and the custodian cannot
drift apart.

A sealed field is `FORMAT + nonce (12 bytes) + AES-256-GCM ciphertext and tag`, under
associated data `protocol.field_aad(...)`.
"""

import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = b"\x01"  # the first byte of every sealed value, for a future change of scheme
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
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
    second beside them, and forgets the first."""
    batch_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    return batch_key, wrap_batch_key(public_pem, batch_key)


def seal_field(aead: AESGCM, aad: bytes, plaintext: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT + nonce + aead.encrypt(nonce, plaintext.encode(), aad)


def open_field(aead: AESGCM, aad: bytes, sealed: bytes) -> str:
    if not sealed.startswith(FORMAT) or len(sealed) < 1 + NONCE_BYTES + TAG_BYTES:
        raise CannotOpen("not a sealed value")
    try:
        plaintext = aead.decrypt(sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise CannotOpen("does not open at this place") from None
    return plaintext.decode()
