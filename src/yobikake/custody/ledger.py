"""The custodian's own ledger (SQLite, `ledger.sqlite3` in the custody home): every
list key made and shredded, every open and refusal, every alert, in one append-only,
hash-chained sequence whose head the custody key signs.

It is custody's record, not the application's: the application's administrator cannot
reach it, and what the application's audit log says is reconciled against it. Entries
name ids, purposes, field names and reasons, never a personal value.

- Triggers refuse UPDATE and DELETE on entries, alerts and canaries (and un-shredding a
  list): the custodian's own code cannot rewrite them by mistake.
- Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
  JSON; `verify` finds the first entry that does not match, so an edit by someone who
  dropped the triggers (anyone holding the file) is found.
- The head (last sequence number and hash) is signed with the custody Ed25519 key after
  every append: rewriting the chain from an edited entry onwards needs that key too.

Safe under a threaded server: one connection per thread; `writing()` is one
`BEGIN IMMEDIATE` transaction, so a budget counted there and the entry appended there
cannot interleave with another request's.
"""

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from yobikake.custody.keyring import SigningKey, verify_signature

GENESIS = "0" * 64
HEAD_CONTEXT = "yobikake-custody-ledger-head"


class Kind(StrEnum):
    START = "start"  # a custodian loaded this home (a server, or a command)
    CREATE_LIST = "create_list"
    CANARIES = "canaries"
    LEAVE_OUT = "leave_out"
    OPEN = "open"
    OPEN_BULK = "open_bulk"  # one entry for all the rows of a bulk open
    REFUSE = "refuse"
    SHRED = "shred"
    ALERT = "alert"
    REPORT = "report"  # the application's audit events received (reconcile.py)
    RECIPIENT = "recipient"  # an insurer's age key, confirmed by the security officer
    LOGIN = "login"  # a login the application reported as it happened (watch.py)
    WITNESS = "witness"  # a head of the application's audit log countersigned (witness.py)
    # The registry of holders and its approvals (holders.py)
    HOLDER = "holder"  # a role confirmed in custody, or revoked
    APPROVAL = "approval"  # an approval filed by the application, or confirmed
    APPROVER = "approver"  # an approver added by the security officer, or enrolled


SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    holder_user_id INTEGER,
    holder_role TEXT,
    purpose TEXT,
    grant_id INTEGER,
    insurer_id INTEGER,
    list_id INTEGER,
    row_id INTEGER,
    campaign_id INTEGER,
    fields TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    event_id INTEGER
);
CREATE INDEX IF NOT EXISTS entries_holder ON entries (holder_user_id, kind, at);
CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, at, holder_user_id);
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS list_keys (
    list_id INTEGER PRIMARY KEY,
    insurer_id INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'shredded')),
    created_at TEXT NOT NULL,
    canaries_at TEXT,
    destroyed_at TEXT,
    certificate BLOB
);
CREATE TABLE IF NOT EXISTS canaries (
    list_id INTEGER NOT NULL REFERENCES list_keys (list_id),
    row_id INTEGER NOT NULL,
    PRIMARY KEY (list_id, row_id)
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'critical')),
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    holder_user_id INTEGER,
    list_id INTEGER,
    ledger_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_kind ON alerts (kind, holder_user_id, at);
"""

_APPEND_ONLY = ("entries", "alerts", "canaries")
GUARDS = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'custody ledger: {table} are append-only'); END"
        for table in _APPEND_ONLY
        for verb in ("update", "delete")
    ),
    "CREATE TRIGGER IF NOT EXISTS list_keys_no_delete BEFORE DELETE ON list_keys "
    "BEGIN SELECT RAISE(ABORT, 'custody ledger: list keys are never deleted'); END",
    "CREATE TRIGGER IF NOT EXISTS list_keys_no_unshred BEFORE UPDATE ON list_keys "
    "WHEN OLD.state = 'shredded' AND NEW.state <> 'shredded' "
    "BEGIN SELECT RAISE(ABORT, 'custody ledger: a shredded list stays shredded'); END",
]


def timestamp(at: datetime) -> str:
    """One fixed-width UTC form, so that text order is time order in SQL."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    at: str
    holder_user_id: int | None
    holder_role: str | None
    purpose: str | None
    grant_id: int | None
    insurer_id: int | None
    list_id: int | None
    row_id: int | None
    campaign_id: int | None
    fields: tuple[str, ...]
    outcome: str
    reason: str
    prev_hash: str
    hash: str
    # The application's audit event an open or refusal names (protocol.Justification).
    event_id: int | None = None

    def computed_hash(self) -> str:
        body = asdict(self)
        del body["hash"], body["prev_hash"]
        if self.event_id is None:  # entries that name no event hash as they always did
            del body["event_id"]
        body["fields"] = list(self.fields)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256((self.prev_hash + canonical).encode()).hexdigest()


_COLUMNS = [
    "seq", "kind", "at", "holder_user_id", "holder_role", "purpose", "grant_id",
    "insurer_id", "list_id", "row_id", "campaign_id", "fields", "outcome", "reason",
    "prev_hash", "hash", "event_id",
]  # fmt: skip
_SELECT_ENTRIES = f"SELECT {', '.join(_COLUMNS)} FROM entries"  # noqa: S608 - fixed names


def _entry(row: tuple[Any, ...]) -> Entry:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["fields"] = tuple(values["fields"].split(",")) if values["fields"] else ()
    return Entry(**values)


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    signature: bytes

    def message(self) -> bytes:
        return f"{HEAD_CONTEXT}:{self.seq}:{self.hash}".encode()


@dataclass(frozen=True)
class Verification:
    """What `Ledger.verify` found: `first_bad` is the first entry that does not match
    the chain (None: all do); `problem` says what is wrong, "" when nothing is."""

    entries: int
    first_bad: int | None
    problem: str

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class ListKey:
    list_id: int
    insurer_id: int
    fingerprint: str
    state: str
    created_at: str
    canaries_at: str | None
    destroyed_at: str | None
    certificate: bytes | None

    @property
    def active(self) -> bool:
        return self.state == "active"


@dataclass(frozen=True)
class AlertRow:
    id: int
    at: str
    severity: str
    kind: str
    summary: str
    holder_user_id: int | None
    list_id: int | None
    ledger_seq: int


class Writer:
    """The ledger inside one write transaction (`Ledger.writing`)."""

    def __init__(self, ledger: "Ledger", connection: sqlite3.Connection) -> None:
        self._ledger = ledger
        self._db = connection

    def append(
        self,
        kind: str,
        at: datetime,
        *,
        outcome: str = "",
        reason: str = "",
        holder_user_id: int | None = None,
        holder_role: str | None = None,
        purpose: str | None = None,
        grant_id: int | None = None,
        insurer_id: int | None = None,
        list_id: int | None = None,
        row_id: int | None = None,
        campaign_id: int | None = None,
        fields: Iterable[str] = (),
        event_id: int | None = None,
    ) -> int:
        """Append one entry, chained to the head, and sign the new head; its seq."""
        head = self._db.execute("SELECT seq, hash FROM head").fetchone()
        seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
        names = tuple(fields)
        if any("," in name for name in names):
            raise ValueError("a field name holds a comma")
        entry = Entry(
            seq=seq,
            kind=str(kind),
            at=timestamp(at),
            holder_user_id=holder_user_id,
            holder_role=holder_role,
            purpose=purpose,
            grant_id=grant_id,
            insurer_id=insurer_id,
            list_id=list_id,
            row_id=row_id,
            campaign_id=campaign_id,
            fields=names,
            outcome=outcome,
            reason=reason,
            prev_hash=prev_hash,
            hash="",
            event_id=event_id,
        )
        digest = entry.computed_hash()
        values = [*asdict(entry).values()]
        values[_COLUMNS.index("fields")] = ",".join(names)
        values[_COLUMNS.index("hash")] = digest
        self._db.execute(
            f"INSERT INTO entries ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",  # noqa: S608, E501
            values,
        )
        signature = self._ledger.signing_key.sign(Head(seq, digest, b"").message())
        self._db.execute(
            "INSERT INTO head (id, seq, hash, signature) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
            "signature = excluded.signature",
            (seq, digest, signature),
        )
        return seq

    def count(
        self,
        kind: str,
        since: datetime,
        *,
        holder_user_id: int | None = None,
        purpose: str | None = None,
        exclude_reason: str = "",
    ) -> int:
        """Entries of `kind` after `since`, of one holder or of everyone."""
        sql = "SELECT count(*) FROM entries WHERE kind = ? AND at > ?"
        params: list[Any] = [kind, timestamp(since)]
        if holder_user_id is not None:
            sql = "SELECT count(*) FROM entries WHERE holder_user_id = ? AND kind = ? AND at > ?"
            params.insert(0, holder_user_id)
        if purpose is not None:
            sql += " AND purpose = ?"
            params.append(purpose)
        if exclude_reason:
            sql += " AND reason <> ?"
            params.append(exclude_reason)
        return int(self._db.execute(sql, params).fetchone()[0])

    def holders(self, kind: str, since: datetime) -> int:
        """How many distinct holders have entries of `kind` after `since`."""
        return int(
            self._db.execute(
                "SELECT count(DISTINCT holder_user_id) FROM entries WHERE kind = ? AND at > ?",
                (kind, timestamp(since)),
            ).fetchone()[0]
        )

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> sqlite3.Cursor:
        return self._db.executemany(sql, (tuple(row) for row in rows))

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Any statement in this transaction: for custody's other tables kept in the
        ledger's file (reconcile.py's)."""
        return self._db.execute(sql, tuple(params))

    def alerted_since(self, kind: str, since: datetime, holder_user_id: int | None) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM alerts WHERE kind = ? AND holder_user_id IS ? AND at > ? LIMIT 1",
                (kind, holder_user_id, timestamp(since)),
            ).fetchone()
            is not None
        )

    def add_alert(
        self,
        *,
        at: datetime,
        severity: str,
        kind: str,
        summary: str,
        holder_user_id: int | None,
        list_id: int | None,
        ledger_seq: int,
    ) -> AlertRow:
        cursor = self._db.execute(
            "INSERT INTO alerts (at, severity, kind, summary, holder_user_id, list_id, "
            "ledger_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (timestamp(at), severity, kind, summary, holder_user_id, list_id, ledger_seq),
        )
        return AlertRow(
            int(cursor.lastrowid or 0),
            timestamp(at),
            severity,
            kind,
            summary,
            holder_user_id,
            list_id,
            ledger_seq,
        )

    def list_key(self, list_id: int) -> ListKey | None:
        return self._ledger._list_key(self._db, list_id)

    def add_list_key(self, list_id: int, insurer_id: int, fingerprint: str, at: datetime) -> None:
        self._db.execute(
            "INSERT INTO list_keys (list_id, insurer_id, fingerprint, state, created_at) "
            "VALUES (?, ?, ?, 'active', ?)",
            (list_id, insurer_id, fingerprint, timestamp(at)),
        )

    def mark_shredded(self, list_id: int) -> None:
        self._db.execute("UPDATE list_keys SET state = 'shredded' WHERE list_id = ?", (list_id,))

    def record_destroyed(self, list_id: int, destroyed_at: str, certificate: bytes) -> None:
        self._db.execute(
            "UPDATE list_keys SET destroyed_at = ?, certificate = ? WHERE list_id = ?",
            (destroyed_at, certificate, list_id),
        )

    def add_canaries(self, list_id: int, row_ids: Iterable[int], at: datetime) -> None:
        self._db.executemany(
            "INSERT INTO canaries (list_id, row_id) VALUES (?, ?)",
            ((list_id, row_id) for row_id in row_ids),
        )
        self._db.execute(
            "UPDATE list_keys SET canaries_at = ? WHERE list_id = ?", (timestamp(at), list_id)
        )

    def is_canary(self, list_id: int, row_id: int) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM canaries WHERE list_id = ? AND row_id = ?", (list_id, row_id)
            ).fetchone()
            is not None
        )

    def canaries(self, list_id: int) -> frozenset[int]:
        rows = self._db.execute("SELECT row_id FROM canaries WHERE list_id = ?", (list_id,))
        return frozenset(row[0] for row in rows)


class Ledger:
    def __init__(self, path: Path, signing_key: SigningKey) -> None:
        self.path = Path(path)
        self.signing_key = signing_key
        self._public_pem = signing_key.public_pem()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        # Reentrant: a worker told to exit by a signal while it holds it still closes.
        self._lock = threading.RLock()
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = self._connection()
        db.executescript(SCHEMA)
        if "event_id" not in {row[1] for row in db.execute("PRAGMA table_info(entries)")}:
            db.execute("ALTER TABLE entries ADD COLUMN event_id INTEGER")
        db.execute("CREATE INDEX IF NOT EXISTS entries_event ON entries (event_id)")
        for guard in GUARDS:
            db.execute(guard)

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # Autocommit: every transaction is an explicit BEGIN IMMEDIATE (writing()).
            # check_same_thread is off only so that close() can close every thread's.
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=10, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): what is read in it
        (a budget) still holds when what is appended in it commits."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield Writer(self, db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def append(self, kind: str, at: datetime, **values: Any) -> int:
        with self.writing() as writer:
            return writer.append(kind, at, **values)

    def _list_key(self, db: sqlite3.Connection, list_id: int) -> ListKey | None:
        row = db.execute(
            "SELECT list_id, insurer_id, fingerprint, state, created_at, canaries_at, "
            "destroyed_at, certificate FROM list_keys WHERE list_id = ?",
            (list_id,),
        ).fetchone()
        return ListKey(*row) if row else None

    def list_key(self, list_id: int) -> ListKey | None:
        return self._list_key(self._connection(), list_id)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read outside any transaction (reconcile.py's reports)."""
        return self._connection().execute(sql, tuple(params)).fetchall()

    def entries_where(self, condition: str, params: Iterable[Any] = ()) -> list[Entry]:
        """Entries matching an SQL condition, in sequence."""
        sql = f"{_SELECT_ENTRIES} WHERE {condition} ORDER BY seq"
        return [_entry(row) for row in self._connection().execute(sql, tuple(params))]

    def recipient(self, insurer_id: int) -> str | None:
        """The insurer's age key the security officer confirmed last (`Kind.RECIPIENT`
        entries: the key is the entry's reason), or None."""
        row = (
            self._connection()
            .execute(
                "SELECT reason FROM entries WHERE kind = ? AND insurer_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (Kind.RECIPIENT, insurer_id),
            )
            .fetchone()
        )
        return str(row[0]) if row and row[0] else None

    def list_keys(self) -> list[ListKey]:
        rows = self._connection().execute(
            "SELECT list_id, insurer_id, fingerprint, state, created_at, canaries_at, "
            "destroyed_at, certificate FROM list_keys ORDER BY list_id"
        )
        return [ListKey(*row) for row in rows]

    def head(self) -> Head:
        """The last entry's seq and hash, and the custody key's signature over them
        (seq 0 and the genesis hash, unsigned, for an empty ledger)."""
        row = self._connection().execute("SELECT seq, hash, signature FROM head").fetchone()
        return Head(row[0], row[1], bytes(row[2])) if row else Head(0, GENESIS, b"")

    def public_pem(self) -> str:
        """The custody signing key's public half: what checks the head and certificates."""
        return self._public_pem

    def entries(self, *, after: int = 0, limit: int | None = None) -> list[Entry]:
        sql = _SELECT_ENTRIES + " WHERE seq > ? ORDER BY seq"
        params: list[Any] = [after]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_entry(row) for row in self._connection().execute(sql, params)]

    def alerts(self, *, after: int = 0, limit: int | None = None) -> list[AlertRow]:
        sql = (
            "SELECT id, at, severity, kind, summary, holder_user_id, list_id, ledger_seq "
            "FROM alerts WHERE id > ? ORDER BY id"
        )
        params: list[Any] = [after]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [AlertRow(*row) for row in self._connection().execute(sql, params)]

    def verify(self) -> Verification:
        """Walk the chain from the first entry: each entry in sequence, chained to the one
        before, its hash its own; then the head, which must name the last entry and
        carry the custody key's signature."""
        expected_prev, count = GENESIS, 0
        db = self._connection()
        for row in db.execute(_SELECT_ENTRIES + " ORDER BY seq"):
            entry = _entry(row)
            count += 1
            if entry.seq != count:
                return Verification(count, entry.seq, f"entry {count} is missing")
            if entry.prev_hash != expected_prev:
                return Verification(count, entry.seq, "not chained to the entry before")
            if entry.computed_hash() != entry.hash:
                return Verification(count, entry.seq, "its content does not match its hash")
            expected_prev = entry.hash
        head = self.head()
        if count == 0 and head.seq == 0:
            return Verification(0, None, "")
        if (head.seq, head.hash) != (count, expected_prev):
            return Verification(count, None, f"the head names entry {head.seq}, not {count}")
        if not verify_signature(self._public_pem, head.message(), head.signature):
            return Verification(count, None, "the head's signature is not the custody key's")
        return Verification(count, None, "")
