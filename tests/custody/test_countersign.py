"""Custody as the audit log's witness: it countersigns a head only when the head's
consistency proof from the last one holds, keeps every head, and refuses a rewritten
past with a critical alert — through the real process over mutual TLS and the fake."""

import json
import sqlite3
import subprocess

import pytest

from tests.custody import server_fixture
from yobikake.custody import merkle
from yobikake.custody.config import Config
from yobikake.custody.countersign import Countersigner
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import CustodyRefused, HeadSubmission, Refusal
from yobikake.vault.custodian import InProcess

LEAVES = [bytes([i]) * 32 for i in range(64)]
REWRITTEN = [*LEAVES[:3], b"\xee" * 32, *LEAVES[4:]]


def submission(leaves, size: int, old_size: int) -> HeadSubmission:
    tree = merkle.InMemory(leaves)
    proof = merkle.consistency(old_size, size, tree.mth)
    return HeadSubmission(size, tree.mth(0, size).hex(), old_size, [h.hex() for h in proof])


@pytest.fixture(params=["http", "in-process"])
def witness(request, tmp_path):
    """(the port, the custody home) of a fresh custodian through either adapter."""
    if request.param == "in-process":
        fake = InProcess(tmp_path / "custody")
        yield fake, fake.home
        fake.close()
        return
    server = server_fixture.start(tmp_path)
    client = server.client()
    yield client, server.home
    client.close()
    server.stop()


def custody_alerts(home) -> list[dict]:
    """The alerts in custody's log, but for the custodian's own start and stop (a served
    custodian raises them whatever the test does)."""
    log = Config.load(home).alerts_log
    lines = log.read_text().splitlines() if log.exists() else []
    alerts = [json.loads(line) for line in lines]
    return [a for a in alerts if a["kind"] not in ("custodian_started", "custodian_stopped")]


def test_heads_are_countersigned_only_while_the_log_extends_the_last(witness):
    port, home = witness
    assert port.latest_head().size == 0
    first = port.countersign(submission(LEAVES, 10, 0))
    second = port.countersign(submission(LEAVES, 40, 10))
    public = Config.load(home).signing_key_path
    from yobikake.custody.keyring import SigningKey

    pem = SigningKey.load(public).public_pem()
    for head in (first, second):
        document = {"size": head.size, "root": head.root, "at": head.at,
                    "signature": head.signature.hex()}  # fmt: skip
        assert merkle.head_signed(pem, document)
    assert port.countersign(submission(LEAVES, 40, 10)) == second  # the same head again
    assert [h.size for h in port.audit_heads(0)] == [10, 40]
    assert [h.size for h in port.audit_heads(10)] == [40]

    # Another submitter was first: told so, no alert.
    with pytest.raises(CustodyRefused) as moved:
        port.countersign(submission(LEAVES, 50, 10))
    assert moved.value.code == Refusal.WITNESS_MOVED
    assert custody_alerts(home) == []

    # Event 4 rewritten, the tree rebuilt: the proof from head 40 cannot hold.
    with pytest.raises(CustodyRefused) as refused:
        port.countersign(submission(REWRITTEN, 50, 40))
    assert refused.value.code == Refusal.WITNESS_INCONSISTENT
    # ... nor can the same size with another root, nor a proof of the genuine tree
    # offered beside the rewritten root.
    for bad in (
        submission(REWRITTEN, 40, 40),
        HeadSubmission(30, merkle.InMemory(LEAVES).mth(0, 30).hex(), 40, []),  # cut short
        HeadSubmission(50, merkle.InMemory(REWRITTEN).mth(0, 50).hex(), 40,
                       submission(LEAVES, 50, 40).proof),
    ):  # fmt: skip
        with pytest.raises(CustodyRefused) as again:
            port.countersign(bad)
        assert again.value.code == Refusal.WITNESS_INCONSISTENT
    [alert] = custody_alerts(home)  # once an hour: a flood would bury the first
    assert alert["kind"] == "witness_inconsistent" and alert["severity"] == "critical"
    assert port.latest_head() == second
    # The genuine log still goes on.
    assert port.countersign(submission(LEAVES, 64, 40)).size == 64


@pytest.mark.parametrize(
    "bad",
    [
        HeadSubmission(5, "zz" * 32, 0, []),
        HeadSubmission(-1, "00" * 32, 0, []),
        HeadSubmission(1 << 63, "00" * 32, 0, []),
        HeadSubmission(5, "00" * 32, 0, ["00" * 32] * (merkle.MAX_PROOF + 1)),
        HeadSubmission(5, "00" * 32, 0, ["not hex"]),
    ],
)
def test_a_malformed_head_is_a_bad_request(local_custodian, bad):
    with pytest.raises(CustodyRefused) as refused:
        Countersigner.of(local_custodian).countersign(bad)
    assert refused.value.code == Refusal.BAD_REQUEST


def test_every_countersigned_head_is_in_the_ledger_and_cannot_be_taken_back(local_custodian):
    witness = Countersigner.of(local_custodian)
    for size in (8, 16, 24):
        witness.countersign(submission(LEAVES, size, witness.latest().size))
    entries = [e for e in local_custodian.entries() if e.kind == Kind.WITNESS]
    assert [e.reason.split()[2] for e in entries] == ["8", "16", "24"]
    assert local_custodian.verify_ledger().ok
    db = sqlite3.connect(local_custodian.ledger.path)
    for statement in ("DELETE FROM audit_heads", "UPDATE audit_heads SET root = 'x'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
    db.close()
    assert [h.size for h in witness.heads(0, limit=2)] == [8, 16]


def test_the_security_officer_prints_the_custody_public_key_for_insurers(tmp_path):
    from yobikake.custody.keyring import SigningKey

    home, _ = server_fixture.init(tmp_path)
    done = subprocess.run(
        [server_fixture.YOBIKAKE, "custodian", "public-key", "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == SigningKey.load(Config.load(home).signing_key_path).public_pem()
    assert "PRIVATE" not in done.stdout
