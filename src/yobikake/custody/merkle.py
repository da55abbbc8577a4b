#!/usr/bin/env python3
"""RFC 6962 Merkle trees over the audit log, and the checker insurers run.

The tree (RFC 6962 §2.1, as Certificate Transparency, Trillian and Tessera build it):

    leaf hash  = SHA-256(0x00 || leaf)
    node hash  = SHA-256(0x01 || left || right)
    MTH(D[n])  = node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of 2 < n

A leaf is the 32 bytes of one audit event's hash (the SHA-256 of its canonical encoding,
yobikake.audit.chain); leaf i is event i + 1. `path` and `consistency` are the RFC's
PATH and PROOF, written over a function `mth(lo, hi)` that gives MTH(D[lo:hi]), so the
same recursion serves a list in memory (`InMemory`, the RFC's own definition, for tests)
and the application's database (yobikake.audit.tree, which keeps the hashes of whole
1,024-leaf subtrees). `verify_inclusion` and `verify_consistency` are RFC 9162
§2.1.3.2 and §2.1.4.2.

Why not `pymerkle` (7.0.0, which hashes the same way and proves both): it computes every
subtree from its leaves and caches them in one process's memory, so each `audit sweep`
and each API request on a log of a million events would read a million rows; and an
insurer would need it installed to check a proof. Here the few functions the RFC
defines are enough, tested against the RFC's definitions (tests/custody/test_merkle.py).

Run as a script, this file is the insurers' checker: it needs Python 3.11+ and the
`cryptography` package, nothing of Yobikake (docs/audit.md):

    python3 merkle.py --key custody.pem head.json          # a countersigned head
    python3 merkle.py --key custody.pem proof.json         # an inclusion or consistency proof
"""

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HEAD_CONTEXT = "yobikake-audit-head v1"
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}), RFC 6962 §2.1
# Longest proof of a tree of up to 2**64 leaves; anything longer is malformed.
MAX_PROOF = 2 * 64

Subtree = Callable[[int, int], bytes]  # MTH(D[lo:hi])


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def path(m: int, lo: int, hi: int, mth: Subtree) -> list[bytes]:
    """PATH(m, D[lo:hi]): the audit path of leaf lo + m (RFC 6962 §2.1.1)."""
    if hi - lo <= 1:
        return []
    k = split(hi - lo)
    if m < k:
        return [*path(m, lo, lo + k, mth), mth(lo + k, hi)]
    return [*path(m - k, lo + k, hi, mth), mth(lo, lo + k)]


def consistency(m: int, n: int, mth: Subtree) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 6962 §2.1.2); empty when m is 0 or n (nothing to prove)."""
    if m <= 0 or m >= n:
        return []
    return _subproof(m, 0, n, True, mth)


def _subproof(m: int, lo: int, hi: int, whole: bool, mth: Subtree) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if whole else [mth(lo, hi)]
    k = split(n)
    if m <= k:
        return [*_subproof(m, lo, lo + k, whole, mth), mth(lo + k, hi)]
    return [*_subproof(m - k, lo + k, hi, False, mth), mth(lo, lo + k)]


class InMemory:
    """MTH over a list of leaves exactly as RFC 6962 §2.1 defines it (no shortcut)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return leaf_hash(self.leaves[lo])
        k = split(n)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))


def fold(subtrees: Sequence[bytes]) -> bytes:
    """MTH of a tree from the roots of its whole subtrees, largest (leftmost) first: the
    binary decomposition of its size (what `Frontier` keeps)."""
    if not subtrees:
        return EMPTY_ROOT
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        root = node_hash(left, root)
    return root


class Frontier:
    """The roots of the whole subtrees of a growing tree, one per bit of its size: append
    leaf hashes one at a time, read the root at any size."""

    def __init__(self) -> None:
        self.size = 0
        self.subtrees: list[bytes] = []

    def append(self, hashed_leaf: bytes) -> None:
        self.size += 1
        self.subtrees.append(hashed_leaf)
        size = self.size
        while not size & 1:  # a subtree as large as the one before it: merge them
            right = self.subtrees.pop()
            self.subtrees[-1] = node_hash(self.subtrees[-1], right)
            size >>= 1

    def root(self) -> bytes:
        return fold(self.subtrees)


def _shift_until(fn: int, sn: int, stop: Callable[[int], bool]) -> tuple[int, int]:
    while not stop(fn):
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `leaf` is leaf `index` of the tree of `size` leaves with `root`
    (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size or len(proof) > MAX_PROOF:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_until(fn, sn, lambda f: f & 1 == 1 or f == 0)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first_size: int, second_size: int, first: bytes, second: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether the tree of `second_size` leaves with root `second` extends the tree of
    `first_size` leaves with root `first` (RFC 9162 §2.1.4.2)."""
    if not 0 <= first_size <= second_size or len(proof) > MAX_PROOF:
        return False
    if first_size == second_size:
        return not proof and first == second
    if first_size == 0:
        return not proof and first == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # a power of two: the old root is a node here
        path.insert(0, first)
    fn, sn = _shift_until(first_size - 1, second_size - 1, lambda f: f & 1 == 0)
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_until(fn, sn, lambda f: f & 1 == 1 or f == 0)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first and sr == second and sn == 0


# -- countersigned heads -------------------------------------------------------------------


def head_message(size: int, root_hex: str, at: str) -> bytes:
    """What the custody key signs when it countersigns a head of the audit log."""
    return f"{HEAD_CONTEXT}\n{size}\n{root_hex}\n{at}".encode()


def head_signed(public_pem: str, head: dict[str, Any]) -> bool:
    """Whether a head (`size`, `root`, `at`, `signature`, hex) carries the custody key's
    signature."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        message = head_message(int(head["size"]), str(head["root"]), str(head["at"]))
        key.verify(bytes.fromhex(head["signature"]), message)
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return False
    return True


def check(document: dict[str, Any], public_pem: str) -> list[str]:
    """What is wrong with a document from the API (a head, an inclusion proof or a
    consistency proof); empty when it holds."""
    heads = [document[name] for name in ("head", "first", "second") if name in document]
    if "size" in document:
        heads.append(document)
    if not heads:
        return ["no countersigned head in the document"]
    problems = [
        f"head of size {head.get('size')} is not signed by the custody key"
        for head in heads
        if not head_signed(public_pem, head)
    ]
    try:
        proof = [bytes.fromhex(h) for h in document.get("proof", [])]
        if document.get("kind") == "inclusion":
            head = document["head"]
            if not verify_inclusion(
                bytes.fromhex(document["leaf"]),
                int(document["leaf_index"]),
                int(head["size"]),
                proof,
                bytes.fromhex(head["root"]),
            ):
                problems.append(f"event {document['seq']} is not in the countersigned log")
        elif document.get("kind") == "consistency":
            first, second = document["first"], document["second"]
            if not verify_consistency(
                int(first["size"]),
                int(second["size"]),
                bytes.fromhex(first["root"]),
                bytes.fromhex(second["root"]),
                proof,
            ):
                problems.append(
                    f"the log of {second['size']} events does not extend the log of "
                    f"{first['size']}: the past was rewritten"
                )
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"malformed document: {type(exc).__name__}: {exc}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check a countersigned head or a proof of the Yobikake audit log."
    )
    parser.add_argument("--key", required=True, type=Path, help="the custody public key (PEM)")
    parser.add_argument("document", type=Path, help="JSON from /api/v1/audit/… ('-': stdin)")
    args = parser.parse_args(argv)
    raw = sys.stdin.read() if str(args.document) == "-" else args.document.read_text()
    problems = check(json.loads(raw), args.key.read_text())
    for problem in problems:
        print(f"NOT OK: {problem}")
    if not problems:
        print("OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
