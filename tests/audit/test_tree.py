"""The log's Merkle tree read from the database (audit/tree.py) is the RFC's tree, across
tiles; and verify rebuilds it from the events, in parallel segments, to check each head
custody countersigned."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from yobikake.audit import chain, guards
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import ChainHead, Event, TreeNode
from yobikake.audit.tree import TILE, LogTree, MissingEvents
from yobikake.audit.verify import verify_log
from yobikake.custody import merkle
from yobikake.custody.protocol import AuditHead

pytestmark = pytest.mark.django_db
EVENTS = 2 * TILE + 552


def bulk_log(count: int) -> list[bytes]:
    """`count` valid events written at once (as bench/audit.py loads them); their hashes."""
    key, prev, at = audit_keys().mac_key(), chain.GENESIS_HASH, timezone.now()
    rows = []
    for seq in range(1, count + 1):
        values = [seq, at, "auth:session:logout", "allowed", "", None, "", None, "", None,
                  None, None, None, "", "", f'{{"n":{seq}}}', prev]  # fmt: skip
        digest = chain.event_hash(values, checked=False)
        rows.append(Event(*values, digest, chain.event_mac(key, digest)))
        prev = digest
    guards.remove(connection)
    Event.objects.bulk_create(rows, batch_size=500)
    ChainHead.objects.update_or_create(pk=1, defaults={"seq": count, "hash": prev})
    guards.install(connection)
    return [bytes.fromhex(row.hash) for row in rows]


def test_the_database_tree_is_the_rfc_tree_and_its_proofs_are_the_rfcs():
    leaves = bulk_log(EVENTS)
    rfc = merkle.InMemory(leaves)
    tree = LogTree(EVENTS)
    sizes = [1, 2, 1000, TILE - 1, TILE, TILE + 1, 2 * TILE, 2 * TILE + 1, EVENTS]
    for size in sizes:
        assert tree.mth(0, size) == rfc.mth(0, size), size
    for index in (0, 1, TILE - 1, TILE, 2 * TILE + 7, EVENTS - 1):
        proof = tree.inclusion(index, EVENTS)
        assert proof == merkle.path(index, 0, EVENTS, rfc.mth)
        assert merkle.verify_inclusion(leaves[index], index, EVENTS, proof, rfc.mth(0, EVENTS))
    for old in (1, 1000, TILE, TILE + 1, 2 * TILE - 1, EVENTS - 1):
        proof = tree.consistency(old, EVENTS)
        assert proof == merkle.consistency(old, EVENTS, rfc.mth)
        assert merkle.verify_consistency(old, EVENTS, rfc.mth(0, old), rfc.mth(0, EVENTS), proof)
    tree.save()
    assert {(n.level, n.index) for n in TreeNode.objects.all()} == {(10, 0), (10, 1), (11, 0)}

    # Kept: the next head reads the last tile's events and the few nodes, not the log.
    with CaptureQueriesContext(connection) as queries:
        again = LogTree(EVENTS)
        assert again.root() == rfc.mth(0, EVENTS)
        assert again.consistency(1000, EVENTS) == merkle.consistency(1000, EVENTS, rfc.mth)
    assert len(queries) <= 3  # the nodes, tile 2's events, tile 0's for size 1000


def test_a_tree_larger_than_the_log_is_refused():
    bulk_log(5)
    with pytest.raises(MissingEvents):
        LogTree(8).root()


def heads_of(leaves: list[bytes], *sizes: int) -> list[AuditHead]:
    rfc = merkle.InMemory(leaves)
    return [AuditHead(size, rfc.mth(0, size).hex(), "t", b"") for size in sizes]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_verify_checks_every_head_whatever_the_segments(workers):
    leaves = bulk_log(EVENTS)
    heads = heads_of(leaves, 7, 1000, TILE, 2000, 2 * TILE, EVENTS)
    report = verify_log(workers=workers, heads=heads)
    assert report.intact and report.heads == len(heads)

    other = [*leaves[:1500], bytes(32), *leaves[1501:]]  # what custody was shown
    report = verify_log(workers=workers, heads=[*heads[:3], *heads_of(other, 2000, EVENTS)])
    assert (report.first.seq, report.first.kind) == (TILE + 1, "rewritten")
    assert f"events {TILE + 1}–2000" in report.first.detail

    beyond = AuditHead(EVENTS + 5, "00" * 32, "t", b"")
    report = verify_log(workers=workers, heads=[*heads_of(leaves, 10), beyond])
    assert (report.first.seq, report.first.kind) == (EVENTS + 1, "deleted")


def test_heads_before_a_broken_event_are_still_checked_those_after_are_not():
    leaves = bulk_log(EVENTS)
    guards.remove(connection)
    Event.objects.filter(seq=1500).update(reason="edited")
    guards.install(connection)
    report = verify_log(heads=heads_of(leaves, 700, 1200, 1499, 2000))
    assert (report.first.seq, report.first.kind) == (1500, "edited")
    assert report.heads == 3 and len(report.problems) == 1
