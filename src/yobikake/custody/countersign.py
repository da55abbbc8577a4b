"""Countersigning the application's audit log: custody as the log's witness.

The application's audit log is an RFC 6962 Merkle tree (merkle.py). Every 1,000 events,
and whenever `audit sweep` or `audit verify` asks, the application sends its head (size
and root) with a consistency proof from the last head custody countersigned. The
custodian checks the proof itself, and only when the new tree extends the old one does
it sign the head with the custody key and keep it (`audit_heads`, append-only, in the
ledger's file, with a `Kind.WITNESS` ledger entry). A head that does not extend it — the
past edited, cut or reordered, however well the application re-hashed, re-MACed and
re-signed it — is refused with a critical custody alert.

So whoever holds every key of the application domain can still rewrite the log, but
not the heads custody holds: `audit verify` and the insurers check the log against them.
Events after the last countersigned head are covered only once the next head is.
"""

import re
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NoReturn

from yobikake.custody import merkle
from yobikake.custody.alerts import AlertChannel, AlertKind
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import SigningKey
from yobikake.custody.ledger import Kind, Ledger, Writer, timestamp
from yobikake.custody.protocol import AuditHead, CustodyRefused, HeadSubmission, Refusal

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_heads (
    size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    at TEXT NOT NULL,
    signature BLOB NOT NULL,
    ledger_seq INTEGER NOT NULL
)
"""
GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS audit_heads_no_{verb} BEFORE {verb.upper()} ON audit_heads "
    "BEGIN SELECT RAISE(ABORT, 'custody witness: audit heads are append-only'); END"
    for verb in ("update", "delete")
]
# Larger than any log, within SQLite's integers.
MAX_SIZE = 1 << 62
# Heads one listing returns; the application pages through the rest.
PAGE = 1000
_HASH = re.compile(r"^[0-9a-f]{64}$")
_LAST = "SELECT size, root, at, signature FROM audit_heads ORDER BY size DESC LIMIT 1"
_NONE = AuditHead(0, merkle.EMPTY_ROOT.hex(), "", b"")

_MADE: "weakref.WeakKeyDictionary[Custodian, Countersigner]" = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


def _head(row: tuple[object, ...] | None) -> AuditHead:
    if row is None:
        return _NONE
    size, root, at, signature = row
    return AuditHead(int(size), str(root), str(at), bytes(signature))  # type: ignore[call-overload]


def check_submission(submission: object) -> None:
    """A `HeadSubmission` of a size, a hex root and a proof of hex hashes, or
    `CustodyRefused(BAD_REQUEST)`."""
    ok = (
        isinstance(submission, HeadSubmission)
        and type(submission.size) is int
        and type(submission.old_size) is int
        and 0 <= submission.old_size < MAX_SIZE
        and 0 <= submission.size < MAX_SIZE
        and isinstance(submission.root, str)
        and _HASH.match(submission.root) is not None
        and isinstance(submission.proof, list)
        and len(submission.proof) <= merkle.MAX_PROOF
        and all(isinstance(h, str) and _HASH.match(h) for h in submission.proof)
    )
    if not ok:
        raise CustodyRefused(Refusal.BAD_REQUEST, "not an audit log head")


class Countersigner:
    """Countersigns the application's audit log heads, and lists those it signed."""

    def __init__(
        self,
        ledger: Ledger,
        channel: AlertChannel,
        signing_key: SigningKey,
        clock: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.channel = channel
        self.signing_key = signing_key
        self._clock = clock
        with ledger.writing() as writer:
            for statement in [SCHEMA, *GUARDS]:
                writer.execute(statement)

    @classmethod
    def of(cls, custodian: Custodian) -> "Countersigner":
        """The countersigner of a custodian's ledger, one per custodian."""
        with _MADE_LOCK:
            made = _MADE.get(custodian)
            if made is None:
                made = _MADE[custodian] = cls(
                    custodian.ledger, custodian.channel, custodian.signing_key, custodian._clock
                )
            return made

    def latest(self) -> AuditHead:
        """The last head countersigned (size 0 before the first)."""
        return _head(next(iter(self.ledger.query(_LAST)), None))

    def heads(self, after_size: int = 0, limit: int = PAGE) -> list[AuditHead]:
        """Countersigned heads larger than `after_size`, smallest first."""
        rows = self.ledger.query(
            "SELECT size, root, at, signature FROM audit_heads WHERE size > ? "
            "ORDER BY size LIMIT ?",
            (after_size, min(limit, PAGE)),
        )
        return [_head(row) for row in rows]

    def countersign(self, submission: HeadSubmission) -> AuditHead:
        """Sign `submission`'s head when its proof shows it extends the last head signed
        (the same head again: that head). Refused as `WITNESS_MOVED` when it was proved
        from another head than the last (a submitter that lost a race asks again);
        refused as `WITNESS_INCONSISTENT`, with a critical alert, when it does not
        extend it (a smaller tree included: the log was cut)."""
        check_submission(submission)
        now = self._clock()
        with self.ledger.writing() as writer:
            last = _head(writer.execute(_LAST).fetchone())
            if (submission.size, submission.root) == (last.size, last.root):
                return last
            if submission.old_size != last.size:
                raise CustodyRefused(
                    Refusal.WITNESS_MOVED,
                    f"the last countersigned head has {last.size} events, not "
                    f"{submission.old_size}",
                )
            proof = [bytes.fromhex(h) for h in submission.proof]
            consistent = merkle.verify_consistency(
                last.size,
                submission.size,
                bytes.fromhex(last.root),
                bytes.fromhex(submission.root),
                proof,
            )
            if consistent:
                return self._sign(writer, submission, now)
        self._inconsistent(submission, last, now)

    def _sign(self, writer: Writer, submission: HeadSubmission, now: datetime) -> AuditHead:
        at = timestamp(now)
        message = merkle.head_message(submission.size, submission.root, at)
        signature = self.signing_key.sign(message)
        seq = writer.append(
            Kind.WITNESS,
            now,
            outcome="countersigned",
            reason=f"audit head {submission.size} {submission.root}",
        )
        writer.execute(
            "INSERT INTO audit_heads (size, root, at, signature, ledger_seq) "
            "VALUES (?, ?, ?, ?, ?)",
            (submission.size, submission.root, at, signature, seq),
        )
        return AuditHead(submission.size, submission.root, at, signature)

    def _inconsistent(self, submission: HeadSubmission, last: AuditHead, now: datetime) -> NoReturn:
        summary = (
            f"the application's audit log head of {submission.size} events "
            f"({submission.root[:16]}…) does not extend the head of {last.size} events "
            f"custody countersigned at {last.at} ({last.root[:16]}…): events before it "
            "were edited, deleted or reordered"
        )
        with self.ledger.writing() as writer:
            alert = self.channel.record(
                writer, now, AlertKind.WITNESS_INCONSISTENT, summary, once_per=timedelta(hours=1)
            )
        self.channel.publish([alert])
        raise CustodyRefused(Refusal.WITNESS_INCONSISTENT, summary)
