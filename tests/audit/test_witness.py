"""The insider's rewrite of the past, as issue "Key custody II" found it working: with
the application's own keys, an event is edited, the chain re-hashed, every MAC and
checkpoint recomputed and the tree's cache rebuilt. Everything the application domain
checks holds; the heads custody countersigned do not. Against a real custodian process
(mutual TLS), on SQLite and PostgreSQL."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from tests.audit.helpers import fill_log
from tests.audit.test_tamper import sql
from tests.custody.test_countersign import custody_alerts
from yobikake.audit import chain, guards
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, ChainHead, Checkpoint, Event, TreeNode
from yobikake.audit.services import _HEAD_ATTR
from yobikake.audit.tree import LogTree
from yobikake.audit.verify import verify_log
from yobikake.audit.witness import countersigned_heads, submit_head
from yobikake.custody import merkle
from yobikake.custody.config import Config

pytestmark = pytest.mark.django_db


def rewrite_as_insider(seq: int) -> None:
    """Edit event `seq`, then make everything after it and about it hold again with the
    application's own keys: hashes, MACs, checkpoint signatures, the chain head, the
    tree's cache. (No witness file is left to rewrite: custody holds the heads.)"""
    keys, mac_key = audit_keys(), audit_keys().mac_key()
    guards.remove(connection)
    sql("UPDATE audit_event SET reason = 'innocent' WHERE seq = %s", [seq])
    prev = Event.objects.get(seq=seq - 1).hash if seq > 1 else chain.GENESIS_HASH
    for event in Event.objects.filter(seq__gte=seq).order_by("seq"):
        event.prev_hash = prev
        digest = chain.event_hash(event.chained_values(), checked=False)
        Event.objects.filter(seq=event.seq).update(
            prev_hash=prev, hash=digest, mac=chain.event_mac(mac_key, digest)
        )
        prev = digest
    for checkpoint in Checkpoint.objects.all():
        head_hash = Event.objects.get(seq=checkpoint.head_seq).hash
        signature = keys.sign(
            chain.checkpoint_message(checkpoint.head_seq, head_hash, checkpoint.at)
        )
        Checkpoint.objects.filter(pk=checkpoint.pk).update(
            head_hash=head_hash, signature=signature.hex()
        )
    ChainHead.objects.filter(pk=1).update(hash=prev)
    TreeNode.objects.all().delete()
    guards.install(connection)
    setattr(connection, _HEAD_ATTR, None)


def test_the_insiders_rewrite_of_the_past_is_caught_by_custodys_heads(custody_process, settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 10
    for _ in range(3):
        fill_log(10)
        submit_head()
    assert [h.size for h in countersigned_heads()] == [10, 20, 30]
    call_command("audit", "verify", stdout=StringIO())

    rewrite_as_insider(17)

    # Every check of the application domain is fooled ...
    assert verify_log().intact
    # ... but the log is no longer the one custody countersigned.
    report = verify_log(heads=countersigned_heads())
    assert (report.first.seq, report.first.kind) == (11, "rewritten")
    assert "events 11–20" in report.first.detail
    err = StringIO()
    with pytest.raises(CommandError, match=r"first bad event 11 \(rewritten\)"):
        call_command("audit", "verify", stdout=StringIO(), stderr=err)
    # Custody refused the rewritten head, and raised its own alert on its own channel.
    [alert] = custody_alerts(custody_process.home)
    assert (alert["kind"], alert["severity"]) == ("witness_inconsistent", "critical")
    assert [h.size for h in countersigned_heads()] == [10, 20, 30]


@pytest.mark.django_db(transaction=True)
def test_a_head_is_countersigned_every_n_events_once_committed(custody_process, settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 10
    with transaction.atomic():
        fill_log(12)  # one transaction: no head until it commits
        assert countersigned_heads() == []
    fill_log(9)  # event 20 commits alone
    heads = countersigned_heads()
    assert [h.size for h in heads] == [12, 20]
    assert heads[-1].root == LogTree(20).root().hex()
    public = custody_process_public_key(custody_process)
    for head in heads:
        document = {"size": head.size, "root": head.root, "at": head.at,
                    "signature": head.signature.hex()}  # fmt: skip
        assert merkle.head_signed(public, document)


def custody_process_public_key(server) -> str:
    from yobikake.custody.keyring import SigningKey

    return SigningKey.load(Config.load(server.home).signing_key_path).public_pem()


@pytest.mark.django_db(transaction=True)
def test_the_next_head_after_a_rewrite_is_refused_and_alerted_on_both_sides(custody, settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 5
    fill_log(5)
    assert [h.size for h in countersigned_heads()] == [5]
    rewrite_as_insider(3)
    fill_log(5)  # the 10th event commits: its head is submitted, and refused
    assert [h.size for h in countersigned_heads()] == [5]
    [alert] = Alert.objects.filter(rule="audit_head_not_countersigned")
    assert alert.severity == Alert.Severity.CRITICAL
    assert [a.kind for a in custody.custodian.alerts()] == ["witness_inconsistent"]
