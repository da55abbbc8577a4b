"""Reconciliation: the custodian's ledger against the application's audit log.

Every single open names the application's audit event for it (`Justification.event_id`),
which the application commits before it asks; an export's bulk open names its approval,
whose event the application writes in the same transaction, just after. The custodian
never reads the application's database: the application *reports* its audit log through
the port (`POST /v1/audit-events`), every event in sequence from where the custodian's
copy ends, each chained to the one before by the log's own hashes. The custodian keeps
what it was told (`app_events`, append-only, in the ledger's file) and one ledger entry
per report, so what the application said cannot be taken back later.

A pass (`Reconciler.run`, every `reconcile_every` seconds in `custodian serve`, or
`yobikake custodian reconcile`) raises a critical custody alert for:

- an open whose event the application did not report, or reported as something else
  (another holder, purpose, row, list, insurer or grant; or already matched to another
  open): the insider who opens through the port without the reveal gate's audit event,
  or who deletes or rewrites it afterwards;
- a reveal event without an open, a refusal, or the application's own record that the
  custodian could not be reached (a forged event, or an open the ledger lost);
- no report for `report_deadline` seconds: silence is not agreement, so an application
  host that stops reporting (to hide what is still to be reported) is itself an alert;
- a report that does not continue the last one (a gap, an edited or deleted event):
  refused, and alerted.

An open is judged once a report received `reconcile_grace` seconds after it says
nothing of it; an event, once it has been here `reconcile_grace` seconds. Each is
settled once (`reconciled`, append-only), matched or alerted. Synthetic bulk opens (a
custodian of synthetic organisations only) have no application event and are counted,
not matched.
"""

import json
import re
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from yobikake.custody.alerts import AlertChannel, AlertKind
from yobikake.custody.core import Custodian
from yobikake.custody.ledger import GENESIS, AlertRow, Entry, Kind, Ledger, Writer, timestamp
from yobikake.custody.protocol import (
    AuditEvent,
    CustodyRefused,
    Purpose,
    Refusal,
    ReportCursor,
)

# The application's audit tags an open answers to (yobikake.audit.tags.AuditTag, which
# custody does not import; tests/custody/test_reconcile.py checks they agree).
REVEAL_TAGS = {
    Purpose.CALL: "target:reveal:call",
    Purpose.RESEARCH: "target:reveal:research",
    Purpose.EXPORT: "target:reveal:export",
}
EXPORT_TAG = REVEAL_TAGS[Purpose.EXPORT]
ALLOWED = "allowed"
# The application's denial of a reveal whose event was written, when the custodian could
# not be reached: it names that event (details "reveal_event").
UNREACHABLE = "custodian_unavailable"
# Events one report may carry; the application sends more in several.
REPORT_LIMIT = 5000
_HASH = re.compile(r"^[0-9a-f]{64}$")
_TEXT = re.compile(r"^[A-Za-z0-9_.:/ -]{0,64}$")
_MAX_DETAILS = 2000
# Longer than any open takes (a bulk open's timeout is 300 s).
_OPEN_MARGIN = timedelta(hours=1)
# Unmatched items named in a pass's summary.
_NAMED = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS app_events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    tag TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor_user_id INTEGER,
    insurer_id INTEGER,
    list_id INTEGER,
    target_id INTEGER,
    purpose TEXT NOT NULL,
    details TEXT NOT NULL,
    grant_id INTEGER,
    approval_id INTEGER,
    reveal_event INTEGER,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS app_events_received ON app_events (outcome, received_at);
CREATE INDEX IF NOT EXISTS app_events_approval ON app_events (approval_id);
CREATE INDEX IF NOT EXISTS app_events_reveal ON app_events (reveal_event);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    first_seq INTEGER,
    through_seq INTEGER NOT NULL,
    events INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciled (
    side TEXT NOT NULL CHECK (side IN ('open', 'event')),
    ref INTEGER NOT NULL,
    at TEXT NOT NULL,
    result TEXT NOT NULL,
    partner INTEGER,
    PRIMARY KEY (side, ref)
);
"""
GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'custody reconciliation: {table} are append-only'); END"
    for table in ("app_events", "reports", "reconciled")
    for verb in ("update", "delete")
]
_LAST = "SELECT seq, hash FROM app_events ORDER BY seq DESC LIMIT 1"
_EVENT_COLUMNS = (
    "seq, at, tag, outcome, reason, actor_user_id, insurer_id, list_id, target_id, purpose, "
    "details, grant_id, approval_id, reveal_event, prev_hash, hash, received_at"
)


@dataclass(frozen=True)
class Stored:
    """An application event as the custodian keeps it."""

    seq: int
    at: str
    tag: str
    outcome: str
    reason: str
    actor_user_id: int | None
    insurer_id: int | None
    list_id: int | None
    target_id: int | None
    purpose: str
    details: str
    grant_id: int | None
    approval_id: int | None
    reveal_event: int | None
    prev_hash: str
    hash: str
    received_at: str


def _id(value: Any) -> bool:
    return type(value) is int and value >= 0


def _optional_id(value: Any) -> bool:
    return value is None or _id(value)


def check_event(event: Any) -> None:
    """An `AuditEvent` of ids and codes, or `ValueError`: what a report stores must not
    carry anything else (the application's log holds nothing else either)."""
    if not isinstance(event, AuditEvent):
        raise ValueError("not an audit event")
    if not _id(event.seq) or event.seq < 1:
        raise ValueError("seq")
    for name in ("actor_user_id", "insurer_id", "list_id", "target_id"):
        if not _optional_id(getattr(event, name)):
            raise ValueError(name)
    for name in ("at", "tag", "outcome", "reason", "purpose"):
        value = getattr(event, name)
        if not (isinstance(value, str) and _TEXT.match(value)):
            raise ValueError(name)
    if not (isinstance(event.details, str) and len(event.details) <= _MAX_DETAILS):
        raise ValueError("details")
    if not (_HASH.match(str(event.hash)) and _HASH.match(str(event.prev_hash))):
        raise ValueError("hash")


def _detail_ids(details: str) -> dict[str, int | None]:
    """The ids reconciliation reads from an event's details (None: absent or not an id)."""
    try:
        parsed = json.loads(details) if details else {}
    except ValueError:
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    return {
        name: parsed.get(name) if _id(parsed.get(name)) else None
        for name in ("grant_id", "approval_id", "reveal_event")
    }


@dataclass(frozen=True)
class Problem:
    kind: AlertKind
    summary: str
    holder_user_id: int | None = None
    list_id: int | None = None
    row_id: int | None = None


_MADE: "weakref.WeakKeyDictionary[Custodian, Reconciler]" = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


class Reconciler:
    """Receives the application's reports and reconciles them with the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        channel: AlertChannel,
        *,
        grace: float,
        deadline: float,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.channel = channel
        self.grace = timedelta(seconds=grace)
        self.deadline = timedelta(seconds=deadline)
        self._clock = clock or (lambda: datetime.now(UTC))
        # What earlier passes of this process have settled for good, so that a pass reads
        # only what is new: opens made after `_opens_after` (an open's entry is
        # appended when it ends, dated when it began: a margin longer than any open),
        # reveal events after `_events_after`.
        self._opens_after: datetime | None = None
        self._events_after = 0
        with ledger.writing() as writer:
            for statement in [*SCHEMA.split(";"), *GUARDS]:
                if statement.strip():
                    writer.execute(statement)

    @classmethod
    def of(cls, custodian: Custodian) -> "Reconciler":
        """The reconciler of a custodian's ledger and channel, one per custodian."""
        with _MADE_LOCK:
            made = _MADE.get(custodian)
            if made is None:
                made = _MADE[custodian] = cls(
                    custodian.ledger,
                    custodian.channel,
                    grace=custodian.config.reconcile_grace,
                    deadline=custodian.config.report_deadline,
                    clock=custodian._clock,
                )
            return made

    def every(self, seconds: float, stop: threading.Event) -> None:
        """A pass every `seconds` until `stop` (the serving custodian's thread); a pass
        that fails is said on stderr and tried again next time."""
        up_since = self._clock()
        while not stop.wait(seconds):
            try:
                self.run(up_since=up_since)
            except Exception as exc:  # the next pass tries again
                print(f"custody reconciliation failed: {exc!r}", file=sys.stderr)

    # -- reports -------------------------------------------------------------------------

    def cursor(self) -> ReportCursor:
        row = self.ledger.query(_LAST)
        return ReportCursor(row[0][0], row[0][1]) if row else ReportCursor(0, GENESIS)

    def receive(self, events: Sequence[AuditEvent]) -> ReportCursor:
        """Keep a report: the last event reported before (once there is one), then the
        events that follow it, in sequence, each chained to the one before (the last
        event alone says the application is there and has nothing new). One that does
        not continue the copy is refused with a critical alert (`Refusal.REPORT_BROKEN`),
        what continues it kept."""
        if len(events) > REPORT_LIMIT:
            raise CustodyRefused(Refusal.BAD_REQUEST, f"at most {REPORT_LIMIT} events a report")
        for event in events:
            try:
                check_event(event)
            except ValueError as exc:
                raise CustodyRefused(Refusal.BAD_REQUEST, f"not an audit event: {exc}") from None
        now = self._clock()
        with self.ledger.writing() as writer:
            cursor, broken = self._store(writer, events, now)
        if broken:
            with self.ledger.writing() as writer:
                alert = self.channel.record(
                    writer, now, AlertKind.REPORT_BROKEN, broken, once_per=timedelta(hours=1)
                )
            self.channel.publish([alert])
            raise CustodyRefused(Refusal.REPORT_BROKEN, broken)
        return cursor

    def _store(
        self, writer: Writer, events: Sequence[AuditEvent], now: datetime
    ) -> tuple[ReportCursor, str]:
        """Keep the events that continue the copy, up to the first that does not; the
        new cursor, and what broke the report ("" when nothing did)."""
        row = writer.execute(_LAST).fetchone()
        through, last_hash = (row[0], row[1]) if row else (0, GENESIS)
        received = timestamp(now)
        broken, kept = "", 0
        if through:
            # Every report repeats at least the last event reported (two reporters at
            # once may repeat more): a log cut short or rewritten from there shows at the
            # next report, even one with nothing new.
            repeated = [event for event in events if event.seq <= through]
            differs = self._differs(writer, repeated)
            if not repeated or repeated[-1].seq != through or differs:
                said = differs or (f"begins with event {events[0].seq}" if events else "is empty")
                broken = (
                    f"the application's report {said}, where the custodian holds its log "
                    f"through audit event {through} ({last_hash[:16]}…): events deleted, "
                    "edited or renumbered"
                )
                return ReportCursor(through, last_hash), broken
            events = events[len(repeated) :]
        for event in events:
            if event.seq != through + 1 or event.prev_hash != last_hash:
                broken = (
                    f"the application reported audit event {event.seq} chained to "
                    f"{event.prev_hash[:16]}…, where its log reported before ends at "
                    f"{through} ({last_hash[:16]}…): events deleted, edited or renumbered"
                )
                break
            kept += 1
            ids = _detail_ids(event.details)
            row = (
                event.seq, event.at, event.tag, event.outcome, event.reason,
                event.actor_user_id, event.insurer_id, event.list_id, event.target_id,
                event.purpose, event.details, ids["grant_id"], ids["approval_id"],
                ids["reveal_event"], event.prev_hash, event.hash, received,
            )  # fmt: skip
            writer.execute(
                f"INSERT INTO app_events ({_EVENT_COLUMNS}) "  # noqa: S608 - fixed names
                f"VALUES ({', '.join('?' * len(row))})",
                row,
            )
            through, last_hash = event.seq, event.hash
        first = events[0].seq if kept else None
        if broken and not kept:
            return ReportCursor(through, last_hash), broken  # not a report: no sign of life
        writer.execute(
            "INSERT INTO reports (at, first_seq, through_seq, events) VALUES (?, ?, ?, ?)",
            (received, first, through, kept),
        )
        if kept:
            writer.append(
                Kind.REPORT,
                now,
                outcome="received",
                reason=f"audit events {first}-{through}, head {last_hash}",
            )
        return ReportCursor(through, last_hash), broken

    @staticmethod
    def _differs(writer: Writer, repeated: Sequence[AuditEvent]) -> str:
        """What differs between events repeated by a report and those kept ("" if none)."""
        for event in repeated:
            row = writer.execute("SELECT hash FROM app_events WHERE seq = ?", (event.seq,))
            kept = row.fetchone()
            if kept is None or kept[0] != event.hash:
                return f"repeats event {event.seq} with another hash ({event.hash[:16]}…)"
        return ""

    # -- reconciling ---------------------------------------------------------------------

    def run(self, *, up_since: datetime | None = None) -> dict[str, Any]:
        """One pass; what it found, as JSON-ready data. `up_since`: when the serving
        custodian started (silence is counted from then at the earliest)."""
        now = self._clock()
        last = self._last_report()
        problems: list[Problem] = []
        counts = {"matched": 0, "refused": 0, "unreachable": 0, "synthetic": 0}
        silent_since = self._silent_since(last, up_since)
        if silent_since is not None and now - silent_since > self.deadline:
            problems.append(
                Problem(
                    AlertKind.REPORT_MISSING,
                    "no report of the application's audit log since "
                    f"{timestamp(silent_since)[:19]} UTC (deadline "
                    f"{int(self.deadline.total_seconds())} s)",
                )
            )
        settled: list[tuple[str, int, str, int | None]] = []
        if last is not None:
            self._opens(last - self.grace, problems, settled, counts)
        self._events(now - self.grace, problems, settled, counts)
        alerts = self._settle(now, settled, problems)
        self.channel.publish(alerts)
        cursor = self.cursor()
        return {
            "at": timestamp(now),
            "last_report": timestamp(last) if last else None,
            "reported_through": cursor.through_seq,
            **counts,
            "alerts": [{"kind": str(p.kind), "summary": p.summary} for p in problems[:_NAMED]],
            "alerts_total": len(problems),
            "ok": not problems,
        }

    def _last_report(self) -> datetime | None:
        row = self.ledger.query("SELECT max(at) FROM reports")
        return datetime.fromisoformat(row[0][0]) if row and row[0][0] else None

    def _silent_since(self, last: datetime | None, up_since: datetime | None) -> datetime | None:
        """Since when the application has said nothing: its last report, or (never
        reported) the ledger's first entry, whichever is later than `up_since`."""
        if last is None:
            first = self.ledger.query("SELECT min(at) FROM entries")
            last = datetime.fromisoformat(first[0][0]) if first and first[0][0] else None
        if last is None:
            return up_since
        return max(last, up_since) if up_since else last

    def _opens(
        self,
        cutoff: datetime,
        problems: list[Problem],
        settled: list[tuple[str, int, str, int | None]],
        counts: dict[str, int],
    ) -> None:
        """Each open the ledger made before `cutoff`, not yet settled, against its
        event."""
        since = self._opens_after - _OPEN_MARGIN if self._opens_after else datetime.min
        opens = self.ledger.entries_where(
            "kind IN (?, ?) AND at > ? AND at <= ? AND seq NOT IN "
            "(SELECT ref FROM reconciled WHERE side = 'open')",
            (Kind.OPEN, Kind.OPEN_BULK, timestamp(since.replace(tzinfo=UTC)), timestamp(cutoff)),
        )
        self._opens_after = cutoff
        claimed = self._claimed()
        for entry in opens:
            if entry.kind == Kind.OPEN_BULK and entry.purpose == Purpose.SYNTHETIC:
                settled.append(("open", entry.seq, "synthetic", None))
                counts["synthetic"] += 1
                continue
            event = self._event_of(entry)
            why = self._mismatch(entry, event, claimed)
            if why:
                problems.append(_unrecorded(entry, why))
                settled.append(("open", entry.seq, "alerted", None))
                continue
            assert event is not None  # noqa: S101 - _mismatch said so
            claimed[event.seq] = entry.seq
            settled.append(("open", entry.seq, "matched", event.seq))
            settled.append(("event", event.seq, "matched", entry.seq))
            counts["matched"] += 1

    def _claimed(self) -> dict[int, int]:
        rows = self.ledger.query(
            "SELECT ref, partner FROM reconciled WHERE side = 'event' AND partner IS NOT NULL"
        )
        return {ref: partner for ref, partner in rows}

    def _event_of(self, entry: Entry) -> Stored | None:
        if entry.event_id is not None:
            return self._stored("seq = ?", (entry.event_id,))
        if entry.kind == Kind.OPEN_BULK and entry.grant_id is not None:
            return self._stored(
                "approval_id = ? AND tag = ? AND outcome = ? AND target_id IS NULL",
                (entry.grant_id, EXPORT_TAG, ALLOWED),
            )
        return None

    def _stored(self, condition: str, params: tuple[Any, ...]) -> Stored | None:
        rows = self.ledger.query(
            f"SELECT {_EVENT_COLUMNS} FROM app_events WHERE {condition} ORDER BY seq LIMIT 1",  # noqa: S608
            params,
        )
        return Stored(*rows[0]) if rows else None

    def _mismatch(self, entry: Entry, event: Stored | None, claimed: dict[int, int]) -> str:
        """Why `event` is not the open's own ("" when it is)."""
        if event is None:
            if entry.kind == Kind.OPEN and entry.event_id is None:
                return "names no audit event"
            name = (
                f"audit event {entry.event_id}"
                if entry.event_id is not None
                else f"an export event of approval {entry.grant_id}"
            )
            return f"names {name}, which the application's reports do not hold"
        bulk = entry.kind == Kind.OPEN_BULK
        expected: dict[str, Any] = {
            "tag": REVEAL_TAGS.get(Purpose(entry.purpose or ""), "") if _purpose(entry) else "",
            "outcome": ALLOWED,
            "actor_user_id": entry.holder_user_id,
            "purpose": entry.purpose,
            "insurer_id": entry.insurer_id,
        }
        if bulk:
            expected["approval_id"] = entry.grant_id
        else:
            expected |= {
                "list_id": entry.list_id,
                "target_id": entry.row_id,
                "grant_id": entry.grant_id,
            }
        differ = [name for name, value in expected.items() if getattr(event, name) != value]
        if differ:
            return f"names audit event {event.seq}, whose {', '.join(differ)} differ"
        other = claimed.get(event.seq)
        if other is not None and other != entry.seq:
            return f"names audit event {event.seq}, already matched to ledger entry {other}"
        return ""

    def _events(
        self,
        cutoff: datetime,
        problems: list[Problem],
        settled: list[tuple[str, int, str, int | None]],
        counts: dict[str, int],
    ) -> None:
        """Each reveal event received before `cutoff`, not yet settled, against the
        ledger: an open (matched by `_opens`, perhaps in a later pass), a refusal, or the
        application's record that the custodian could not be reached."""
        rows = self.ledger.query(
            f"SELECT {_EVENT_COLUMNS} FROM app_events WHERE seq > ? AND outcome = ? "  # noqa: S608
            f"AND received_at <= ? AND tag IN ({', '.join('?' * len(REVEAL_TAGS))}) "
            "AND seq NOT IN (SELECT ref FROM reconciled WHERE side = 'event') ORDER BY seq",
            (self._events_after, ALLOWED, timestamp(cutoff), *REVEAL_TAGS.values()),
        )
        matched = {ref for side, ref, _, _ in settled if side == "event"}
        waiting: list[int] = []
        for event in (Stored(*row) for row in rows):
            if event.seq in matched:
                continue
            bulk = event.tag == EXPORT_TAG and event.target_id is None
            ledger = self._ledger_of(event, bulk)
            if ledger is not None and ledger.kind in (Kind.OPEN, Kind.OPEN_BULK):
                if not self._settled_open(ledger.seq):
                    waiting.append(event.seq)  # matched once a report has covered its open
                    continue
                ledger = None  # its open was settled without it: the event has no open
            if ledger is not None:
                settled.append(("event", event.seq, "refused", ledger.seq))
                counts["refused"] += 1
            elif self._stored(
                "reveal_event = ? AND outcome = 'denied' AND reason = ?", (event.seq, UNREACHABLE)
            ):
                settled.append(("event", event.seq, "unreachable", None))
                counts["unreachable"] += 1
            else:
                problems.append(_without_open(event, bulk))
                settled.append(("event", event.seq, "alerted", None))
        if rows:
            # Events arrive in sequence: those after the last one read are not read yet.
            self._events_after = (min(waiting) - 1) if waiting else rows[-1][0]

    def _settled_open(self, seq: int) -> bool:
        sql = "SELECT 1 FROM reconciled WHERE side = 'open' AND ref = ?"
        return bool(self.ledger.query(sql, (seq,)))

    def _ledger_of(self, event: Stored, bulk: bool) -> Entry | None:
        if bulk:
            found = self.ledger.entries_where(
                "kind = ? AND purpose = ? AND grant_id IS ? AND holder_user_id IS ?",
                (Kind.OPEN_BULK, Purpose.EXPORT, event.approval_id, event.actor_user_id),
            )
        else:
            found = self.ledger.entries_where(
                "event_id = ? AND kind IN (?, ?)", (event.seq, Kind.OPEN, Kind.REFUSE)
            )
        opens = [e for e in found if e.kind != Kind.REFUSE]
        return next(iter(opens or found), None)

    def _settle(
        self,
        now: datetime,
        settled: list[tuple[str, int, str, int | None]],
        problems: list[Problem],
    ) -> list[AlertRow | None]:
        """Record what the pass settled and raise its alerts, in one transaction."""
        alerts: list[AlertRow | None] = []
        with self.ledger.writing() as writer:
            for side, ref, result, partner in settled:
                writer.execute(
                    "INSERT OR IGNORE INTO reconciled (side, ref, at, result, partner) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (side, ref, timestamp(now), result, partner),
                )
            for problem in problems:
                once = self.deadline if problem.kind == AlertKind.REPORT_MISSING else None
                alerts.append(
                    self.channel.record(
                        writer,
                        now,
                        problem.kind,
                        problem.summary,
                        holder_user_id=problem.holder_user_id,
                        list_id=problem.list_id,
                        row_id=problem.row_id,
                        once_per=once,
                    )
                )
        return alerts


def _purpose(entry: Entry) -> bool:
    return entry.purpose in Purpose._value2member_map_


def _unrecorded(entry: Entry, why: str) -> Problem:
    if entry.kind == Kind.OPEN_BULK:
        what = f"bulk open (approval {entry.grant_id}, insurer {entry.insurer_id}, {entry.reason})"
    else:
        what = f"open of list {entry.list_id} row {entry.row_id} (grant {entry.grant_id})"
    return Problem(
        AlertKind.OPEN_UNRECORDED,
        f"ledger entry {entry.seq}: {what} for holder {entry.holder_user_id} "
        f"({entry.holder_role}, {entry.purpose}) at {entry.at[:19]} UTC {why}",
        holder_user_id=entry.holder_user_id,
        list_id=entry.list_id,
        row_id=entry.row_id,
    )


def _without_open(event: Stored, bulk: bool) -> Problem:
    if bulk:
        what = f"an export of approval {event.approval_id} (insurer {event.insurer_id})"
    else:
        what = f"a reveal of list {event.list_id} row {event.target_id} (grant {event.grant_id})"
    return Problem(
        AlertKind.EVENT_WITHOUT_OPEN,
        f"the application's audit event {event.seq} records {what} for user "
        f"{event.actor_user_id} ({event.purpose}) at {event.at[:19]}, and custody's ledger "
        "has no open or refusal for it",
        holder_user_id=event.actor_user_id,
        list_id=event.list_id,
        row_id=event.target_id,
    )
