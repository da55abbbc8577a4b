"""Blind indexes: keyed BLAKE2b over normalised values, so that equal values can be found
without storing them. Each insurer has its own index key, so the same person on two
insurers' lists does not link; each index kind is domain-separated, so a phone index
value says nothing about a name index value.

Truncated to 128 bits: among a billion values a collision has odds of about 1 in 10^20.

There is no index over a low-cardinality field alone (sex, age, birth year): a table of
such digests gives the values back by frequency. Combinations only.
"""

import hashlib
from collections.abc import Iterator, Mapping
from enum import StrEnum

DIGEST_BYTES = 16
_SEPARATOR = "\x1f"


class IndexKind(StrEnum):
    PHONE = "phone"
    INSURED_NUMBER = "insured-number"
    KANA_BIRTH = "kana+birth"
    NAME_BIRTH = "name+birth"
    KANA_ADDRESS = "kana+address"
    NAME_ADDRESS = "name+address"
    KANA_PHONE = "kana+phone"


# How many normalised parts each kind takes.
PARTS = {kind: len(kind.value.split("+")) for kind in IndexKind}


def blind_index(index_key: bytes, kind: IndexKind, *parts: str) -> bytes:
    """The index value of normalised `parts` for `kind` under an insurer's index key.
    Empty parts are refused: a missing value must produce no index, not a common one."""
    return Indexer(index_key).value(kind, *parts)


class Indexer:
    """`blind_index` for many values under one key: the keyed hash of each kind is set up
    once and copied per value (a list import computes seven per person)."""

    def __init__(self, index_key: bytes) -> None:
        if len(index_key) < 32:
            raise ValueError("a blind-index key has at least 32 bytes")
        self._start = {
            kind: hashlib.blake2b(
                key=index_key, digest_size=DIGEST_BYTES, person=kind.value.encode()[:16]
            )
            for kind in IndexKind
        }

    def values(
        self, parts: Mapping[IndexKind, tuple[str, ...]]
    ) -> Iterator[tuple[IndexKind, bytes]]:
        """(kind, `value`) for each kind in `parts`, as `IndexedFields.parts` gives them;
        for many rows under many keys (leak scoping) without a call per value."""
        start = self._start
        for kind, row in parts.items():
            joined = _SEPARATOR.join(row)
            if len(row) != PARTS[kind] or "" in row or joined.count(_SEPARATOR) != len(row) - 1:
                raise ValueError(f"{kind} takes {PARTS[kind]} non-empty parts without separators")
            digest = start[kind].copy()
            digest.update(joined.encode())
            yield kind, digest.digest()

    def value(self, kind: IndexKind, *parts: str) -> bytes:
        # As many parts as the kind takes, none empty, none holding the separator.
        if len(parts) != PARTS[kind] or "" in parts:
            raise ValueError(f"{kind} takes {PARTS[kind]} non-empty parts without separators")
        joined = _SEPARATOR.join(parts)
        if joined.count(_SEPARATOR) != len(parts) - 1:
            raise ValueError(f"{kind} takes {PARTS[kind]} non-empty parts without separators")
        digest = self._start[kind].copy()
        digest.update(joined.encode())
        return digest.digest()
