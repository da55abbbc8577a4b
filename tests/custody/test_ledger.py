"""The custodian's ledger: append-only, hash-chained, its head signed; `verify` finds the
first entry an attacker holding the file has changed."""

import sqlite3
import threading

import pytest

from tests.custody.conftest import MONDAY_NOON_JST
from yobikake.custody.config import Config
from yobikake.custody.keyring import SigningKey, verify_signature
from yobikake.custody.ledger import GENESIS, Kind, Ledger


@pytest.fixture
def ledger(home):
    config = Config.load(home)
    ledger = Ledger(config.ledger_path, SigningKey.load(config.signing_key_path))
    yield ledger
    ledger.close()


def append_opens(ledger, count, user_id=7):
    for row_id in range(1, count + 1):
        ledger.append(
            Kind.OPEN,
            MONDAY_NOON_JST,
            outcome="opened",
            holder_user_id=user_id,
            holder_role="operator",
            purpose="call",
            grant_id=3,
            insurer_id=21,
            list_id=11,
            row_id=row_id,
            fields=("name_kanji", "phone"),
        )


def attacker(ledger) -> sqlite3.Connection:
    """Someone with the file, not the custodian's code: the triggers are theirs to drop."""
    db = sqlite3.connect(ledger.path, isolation_level=None)
    db.execute("DROP TRIGGER entries_no_update")
    db.execute("DROP TRIGGER entries_no_delete")
    return db


def test_entries_are_chained_and_the_head_is_signed(ledger):
    assert ledger.head().seq == 0
    append_opens(ledger, 3)
    entries = ledger.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.computed_hash() == e.hash for e in entries)
    assert entries[2].fields == ("name_kanji", "phone")
    assert entries[2].at == "2026-12-07T03:00:00.000000+00:00"
    head = ledger.head()
    assert (head.seq, head.hash) == (3, entries[2].hash)
    assert verify_signature(ledger.public_pem(), head.message(), head.signature)
    assert ledger.verify().ok
    assert ledger.verify().entries == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET reason = 'nothing happened' WHERE seq = 2",
        "DELETE FROM entries WHERE seq = 3",
        "UPDATE alerts SET severity = 'info'",
        "DELETE FROM alerts",
        "DELETE FROM canaries",
        "DELETE FROM list_keys",
        "UPDATE list_keys SET state = 'active'",
    ],
)
def test_sqlite_refuses_rewriting_the_ledger(ledger, statement):
    append_opens(ledger, 3)
    with ledger.writing() as writer:
        writer.add_list_key(11, 21, "f" * 64, MONDAY_NOON_JST)
        writer.add_canaries(11, [5], MONDAY_NOON_JST)
        seq = writer.append(Kind.ALERT, MONDAY_NOON_JST, outcome="critical", reason="x")
        writer.add_alert(
            at=MONDAY_NOON_JST,
            severity="critical",
            kind="x",
            summary="x",
            holder_user_id=None,
            list_id=None,
            ledger_seq=seq,
        )
        writer.mark_shredded(11)
    db = sqlite3.connect(ledger.path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="custody ledger"):
        db.execute(statement)


def test_verify_finds_an_entry_edited_by_someone_with_the_file(ledger):
    append_opens(ledger, 5)
    attacker(ledger).execute("UPDATE entries SET holder_user_id = 8 WHERE seq = 3")
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad == 3
    assert "hash" in result.problem


def test_verify_finds_an_entry_taken_out(ledger):
    append_opens(ledger, 5)
    attacker(ledger).execute("DELETE FROM entries WHERE seq = 2")
    assert ledger.verify().first_bad == 3


def test_verify_finds_the_last_entries_taken_out(ledger):
    """Deleting the tail leaves a consistent chain; the signed head still names the end."""
    append_opens(ledger, 5)
    attacker(ledger).execute("DELETE FROM entries WHERE seq > 3")
    result = ledger.verify()
    assert not result.ok
    assert "head" in result.problem


def test_a_chain_rewritten_without_the_custody_key_does_not_verify(ledger):
    """Rehashing every entry after an edit gives a consistent chain, but the head's
    signature needs the custody key."""
    append_opens(ledger, 4)
    db = attacker(ledger)
    db.execute("UPDATE entries SET row_id = 99 WHERE seq = 2")
    prev = ledger.entries()[0].hash
    for entry in ledger.entries()[1:]:
        rehashed = type(entry)(**{**entry.__dict__, "prev_hash": prev})
        prev = rehashed.computed_hash()
        db.execute(
            "UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?",
            (rehashed.prev_hash, prev, entry.seq),
        )
    db.execute("UPDATE head SET hash = ?", (prev,))
    result = ledger.verify()
    assert result.first_bad is None
    assert "signature" in result.problem


def test_threads_append_one_chain(ledger):
    threads = [
        threading.Thread(target=append_opens, args=(ledger, 25, user_id)) for user_id in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.verify().ok
    assert ledger.head().seq == 100


def test_the_ledger_file_is_private(ledger):
    assert ledger.path.stat().st_mode & 0o077 == 0
