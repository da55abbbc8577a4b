"""RFC 6962 trees: the recursion against the RFC's definitions, and the RFC 9162
verifiers against every proof of small trees, tampered ones included."""

import json
import subprocess
import sys

import pytest

from yobikake.custody import merkle
from yobikake.custody.merkle import Frontier, InMemory

# Certificate Transparency's test leaves and the roots of their prefixes (as Trillian's
# and the RFC 6962 reference tests use them).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
LEAVES = [bytes([i]) * 32 for i in range(70)]


def test_the_tree_hashes_certificate_transparencys_test_vectors():
    tree = InMemory(CT_LEAVES)
    assert tree.mth(0, 0).hex() == merkle.EMPTY_ROOT.hex()
    for size, root in CT_ROOTS.items():
        assert tree.mth(0, size).hex() == root


def test_leaves_and_nodes_are_hashed_apart():
    # RFC 6962 §2.1: a node cannot pass for a leaf (second preimages).
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)


def test_the_frontier_has_the_root_of_every_size():
    tree, frontier = InMemory(LEAVES), Frontier()
    assert frontier.root() == merkle.EMPTY_ROOT
    for size, leaf in enumerate(LEAVES, start=1):
        frontier.append(merkle.leaf_hash(leaf))
        assert frontier.root() == tree.mth(0, size)
        assert len(frontier.subtrees) == size.bit_count()


def test_every_inclusion_proof_of_small_trees_verifies_and_no_other_leaf_does():
    tree = InMemory(LEAVES)
    for size in range(1, len(LEAVES) + 1):
        root = tree.mth(0, size)
        for index in range(size):
            proof = merkle.path(index, 0, size, tree.mth)
            assert merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
            other = LEAVES[(index + 1) % len(LEAVES)]
            assert not merkle.verify_inclusion(other, index, size, proof, root)
            if proof:
                bent = [*proof[:-1], bytes(32)]
                assert not merkle.verify_inclusion(LEAVES[index], index, size, bent, root)
        assert not merkle.verify_inclusion(LEAVES[0], size, size, [], root)


def test_every_consistency_proof_of_small_trees_verifies():
    tree = InMemory(LEAVES)
    for n in range(1, 40):
        second = tree.mth(0, n)
        for m in range(0, n + 1):
            first = tree.mth(0, m)
            proof = merkle.consistency(m, n, tree.mth)
            assert merkle.verify_consistency(m, n, first, second, proof), (m, n)
            if proof:
                bent = [bytes(32), *proof[1:]]
                assert not merkle.verify_consistency(m, n, first, second, bent)
                assert not merkle.verify_consistency(m, n, first, second, proof[:-1])


def test_a_rewritten_past_is_not_consistent_with_the_head_it_had():
    tree = InMemory(LEAVES)
    rewritten = InMemory([*LEAVES[:5], b"edited", *LEAVES[6:]])
    for m in range(6, 40):
        old = tree.mth(0, m)
        for n in range(m, 41):
            proof = merkle.consistency(m, n, rewritten.mth)
            assert not merkle.verify_consistency(m, n, old, rewritten.mth(0, n), proof)
    # ... nor is a shorter log, or one reached by a proof for other sizes.
    assert not merkle.verify_consistency(9, 8, tree.mth(0, 9), tree.mth(0, 8), [])
    proof = merkle.consistency(6, 12, tree.mth)
    assert not merkle.verify_consistency(7, 12, tree.mth(0, 7), tree.mth(0, 12), proof)


def test_the_rfc_proof_of_ct_leaves_is_the_reference_one():
    # RFC 6962 §2.1.3's example tree of 7 leaves, and its proofs.
    tree = InMemory(CT_LEAVES)
    c, d = merkle.leaf_hash(CT_LEAVES[2]), merkle.leaf_hash(CT_LEAVES[3])
    g, k, l = tree.mth(0, 2), tree.mth(0, 4), tree.mth(4, 7)  # noqa: E741 - the RFC's names
    i, j = tree.mth(4, 6), merkle.leaf_hash(CT_LEAVES[6])
    assert merkle.consistency(3, 7, tree.mth) == [c, d, g, l]
    assert merkle.consistency(4, 7, tree.mth) == [l]
    assert merkle.consistency(6, 7, tree.mth) == [i, j, k]
    # ... and the audit path of d3 (§2.1.3): [c, g, l].
    assert merkle.path(3, 0, 7, tree.mth) == [c, g, l]


def test_the_checker_script_needs_nothing_of_yobikake(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "custody.pem").write_bytes(pem)
    tree = InMemory(LEAVES)

    def head(size: int) -> dict:
        root, at = tree.mth(0, size).hex(), "2026-12-07T00:00:00.000000+00:00"
        signature = key.sign(merkle.head_message(size, root, at)).hex()
        return {"size": size, "root": root, "at": at, "signature": signature}

    inclusion = {
        "kind": "inclusion", "seq": 4, "leaf_index": 3, "leaf": LEAVES[3].hex(),
        "head": head(10), "proof": [h.hex() for h in merkle.path(3, 0, 10, tree.mth)],
    }  # fmt: skip
    consistency = {
        "kind": "consistency", "first": head(6), "second": head(10),
        "proof": [h.hex() for h in merkle.consistency(6, 10, tree.mth)],
    }  # fmt: skip
    forged = {**head(10), "root": tree.mth(0, 9).hex()}
    script = merkle.__file__
    results = {}
    for name, document in [("inclusion", inclusion), ("consistency", consistency),
                           ("head", head(3)), ("forged", forged),
                           ("wrong leaf", {**inclusion, "leaf": LEAVES[4].hex()})]:  # fmt: skip
        path = tmp_path / "doc.json"
        path.write_text(json.dumps(document))
        # -I: isolated, so that nothing of the project's environment is importable.
        done = subprocess.run(
            [sys.executable, "-I", script, "--key", str(tmp_path / "custody.pem"), str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        results[name] = (done.returncode, done.stdout.strip())
    assert results["inclusion"] == (0, "OK")
    assert results["consistency"] == (0, "OK")
    assert results["head"] == (0, "OK")
    assert results["forged"][0] == 1 and "not signed" in results["forged"][1]
    code, said = results["wrong leaf"]
    assert code == 1 and "not in the countersigned log" in said


@pytest.mark.parametrize("size", [2, 3, 4, 1000, 1024, 1025])
def test_split_is_the_largest_power_of_two_below(size):
    k = merkle.split(size)
    assert k < size <= 2 * k and k & (k - 1) == 0
