"""What the custodian watches of the application: its heartbeats, and its logins.

**Heartbeats.** The application beats (`POST /v1/heartbeats {source}`) from its web
server and task worker ("application"), and each scheduled check beats when it runs:
`audit sweep` ("audit_sweep"), reconciliation's report ("reconcile") and `retention
enforce` ("retention"). custody.json's `heartbeats` gives each source the most seconds
between two beats; `custodian serve` looks every `heartbeat_check_seconds` and raises a
critical alert for a source silent longer than that (counted from the custodian's start
at the earliest), once per interval while it stays silent. Whoever stops the
application, or drops a check from cron, is seen on custody's channel.

**Logins.** The application reports each login as it happens (`POST /v1/logins`): the
account, the audit event that records it, and a digest of the session's key
(`sha256:` and 56 hex digits). The
custodian keeps it (`logins`, append-only, and a ledger entry), and a logout as well
(`POST /v1/logouts`). The application's middleware asks about each session the first
time a process sees it (`POST /v1/sessions/check`): a session whose login custody never
heard of, that was logged out of, or whose login is older than `session_max_hours`, is
answered "unknown" and raised as a critical alert here, whatever the application does
next. And
every login event the application's reports carry (reconcile.py) must be one custody
was told of at the time: a login event appended to the log afterwards, with the
application's own audit keys, is a critical alert too.
"""

import json
import re
import sys
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from yobikake.custody.alerts import AlertChannel, AlertKind, Severity
from yobikake.custody.config import Config
from yobikake.custody.core import Custodian
from yobikake.custody.ledger import AlertRow, Kind, Ledger, Writer, timestamp
from yobikake.custody.protocol import CustodyRefused, Refusal
from yobikake.custody.reconcile import Reconciler

APPLICATION = "application"
# The application's audit tag of a login (yobikake.audit.tags.AuditTag.LOGIN_SUCCESS).
LOGIN_TAG = "auth:login:success"
# A session's digest as the application sends it: `sha256:` and 56 hex digits.
_DIGEST = re.compile(r"^sha256:[0-9a-f]{56}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS heartbeats (
    source TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    beats INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS logins (
    session TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logouts (
    session TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logins_checked (
    event_seq INTEGER PRIMARY KEY,
    result TEXT NOT NULL
);
"""
GUARDS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb.upper()} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'custody: {table} are append-only'); END"
    for table in ("logins", "logouts", "logins_checked")
    for verb in ("update", "delete")
]

_MADE: "weakref.WeakKeyDictionary[Custodian, Watch]" = weakref.WeakKeyDictionary()
_MADE_LOCK = threading.Lock()


def _digest(value: object) -> str:
    if not (isinstance(value, str) and _DIGEST.match(value)):
        raise CustodyRefused(Refusal.BAD_REQUEST, "session must be a digest (sha256:<56 hex>)")
    return value


def _id(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise CustodyRefused(Refusal.BAD_REQUEST, f"{name} must be a positive integer")
    return value


class Watch:
    """Heartbeats and logins of one custodian's ledger."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        channel: AlertChannel,
        reconciler: Reconciler,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.intervals = {source: timedelta(seconds=s) for source, s in config.heartbeats.items()}
        self.grace = reconciler.grace
        self.session_max = timedelta(hours=config.session_max_hours)
        self.ledger, self.channel = ledger, channel
        self._clock = clock or (lambda: datetime.now(UTC))
        self.up_since = self._clock()
        self._logins_after: int | None = None
        with ledger.writing() as writer:
            for statement in [*SCHEMA.split(";"), *GUARDS]:
                if statement.strip():
                    writer.execute(statement)

    @classmethod
    def of(cls, custodian: Custodian) -> "Watch":
        with _MADE_LOCK:
            made = _MADE.get(custodian)
            if made is None:
                made = _MADE[custodian] = cls(
                    custodian.config,
                    custodian.ledger,
                    custodian.channel,
                    Reconciler.of(custodian),
                    custodian._clock,
                )
            return made

    def every(self, seconds: float, stop: threading.Event) -> None:
        """`check` every `seconds` until `stop` (the serving custodian's thread)."""
        while not stop.wait(seconds):
            try:
                self.check()
            except Exception as exc:  # the next look tries again
                print(f"custody heartbeat check failed: {exc!r}", file=sys.stderr)

    # -- heartbeats ----------------------------------------------------------------------

    def beat(self, source: object) -> None:
        if not isinstance(source, str) or source not in self.intervals:
            raise CustodyRefused(
                Refusal.BAD_REQUEST, f"source must be one of {sorted(self.intervals)}"
            )
        with self.ledger.writing() as writer:
            writer.execute(
                "INSERT INTO heartbeats (source, at, beats) VALUES (?, ?, 1) ON CONFLICT "
                "(source) DO UPDATE SET at = excluded.at, beats = heartbeats.beats + 1",
                (source, timestamp(self._clock())),
            )

    def check(self) -> list[str]:
        """Alert each source silent past its interval, and each login event custody was
        not told of; what was alerted, by kind."""
        now = self._clock()
        last = {source: datetime.fromisoformat(at) for source, at in self._heartbeats()}
        alerts: list[AlertRow | None] = []
        with self.ledger.writing() as writer:
            for source, interval in self.intervals.items():
                since = max(last.get(source, self.up_since), self.up_since)
                if now - since <= interval:
                    continue
                kind = (
                    AlertKind.APPLICATION_SILENT
                    if source == APPLICATION
                    else AlertKind.CHECK_MISSED
                )
                summary = (
                    f"no heartbeat of {source} since {timestamp(since)[:19]} UTC "
                    f"(expected every {int(interval.total_seconds())} s"
                    + ("" if source in last else "; none since the custodian started")
                    + ")"
                )
                if self._first_of(writer, kind, source, now - interval):
                    alerts.append(self.channel.record(writer, now, kind, summary))
            alerts += self._unreported_logins(writer, now)
        self.channel.publish(alerts)
        return [alert.kind for alert in alerts if alert is not None]

    @staticmethod
    def _first_of(writer: Writer, kind: str, source: str, since: datetime) -> bool:
        """Whether no alert of `kind` named `source` since `since`: one alert per
        interval while a source stays silent, each source its own."""
        rows = writer.execute(
            "SELECT 1 FROM alerts WHERE kind = ? AND at > ? AND summary LIKE ? LIMIT 1",
            (kind, timestamp(since), f"no heartbeat of {source} %"),
        )
        return rows.fetchone() is None

    def _heartbeats(self) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self.ledger.query("SELECT source, at FROM heartbeats")]

    # -- logins --------------------------------------------------------------------------

    def record_login(self, user_id: object, event_seq: object, session: object) -> None:
        """Keep a login as the application reports it, once per session."""
        user, seq, digest = _id(user_id, "user_id"), _id(event_seq, "event_seq"), _digest(session)
        now = self._clock()
        with self.ledger.writing() as writer:
            added = writer.execute(
                "INSERT OR IGNORE INTO logins (session, user_id, event_seq, at) "
                "VALUES (?, ?, ?, ?)",
                (digest, user, seq, timestamp(now)),
            ).rowcount
            if added:
                writer.append(
                    Kind.LOGIN,
                    now,
                    outcome="reported",
                    reason=f"audit event {seq}",
                    holder_user_id=user,
                )

    def record_logout(self, user_id: object, session: object) -> None:
        """A session its user logged out of: never honoured again, even put back in the
        application's session store."""
        user, digest = _id(user_id, "user_id"), _digest(session)
        with self.ledger.writing() as writer:
            writer.execute(
                "INSERT OR IGNORE INTO logouts (session, at) SELECT session, ? FROM logins "
                "WHERE session = ? AND user_id = ?",
                (timestamp(self._clock()), digest, user),
            )

    def check_session(self, user_id: object, session: object, event_seq: object) -> bool:
        """Whether custody was told of the login that made this session, for this account,
        no more than `session_max_hours` ago, and of no logout of it since. A session
        that fails is a critical alert (the application refuses it)."""
        user, digest = _id(user_id, "user_id"), _digest(session)
        seq = event_seq if type(event_seq) is int else None
        now = self._clock()
        rows = self.ledger.query(
            "SELECT at, session IN (SELECT session FROM logouts) FROM logins "
            "WHERE session = ? AND user_id = ?",
            (digest, user),
        )
        if not rows:
            why = "without a login reported to custody"
        elif rows[0][1]:
            why = "after its user logged out of it"
        elif now - datetime.fromisoformat(rows[0][0]) > self.session_max:
            why = f"more than {self.session_max.total_seconds() / 3600:g} h after its login"
        else:
            return True
        summary = (
            f"a session of user {user} (session {digest[7:19]}…, login event {seq}) was used "
            f"{why}: refused by the application"
        )
        with self.ledger.writing() as writer:
            # One a few minutes per account: a flood of them would bury other alerts.
            alert = self.channel.record(
                writer,
                now,
                AlertKind.SESSION_UNBOUND,
                summary,
                holder_user_id=user,
                once_per=timedelta(minutes=2),
            )
        self.channel.publish([alert])
        return False

    def _unreported_logins(self, writer: Writer, now: datetime) -> list[AlertRow | None]:
        """Login events reported (reconcile.py) `grace` ago or more, whose session custody
        was not told of at login."""
        cutoff = timestamp(now - self.grace)
        if self._logins_after is None:
            mark = writer.execute("SELECT max(event_seq) FROM logins_checked").fetchone()
            self._logins_after = mark[0] or 0
        # Reports arrive in sequence, so events are received in order: those up to the
        # last one past the grace are all read, and the next pass starts after it.
        rows = writer.execute(
            "SELECT seq, actor_user_id, details FROM app_events WHERE seq > ? AND tag = ? "
            "AND outcome = 'allowed' AND received_at <= ? AND seq NOT IN (SELECT event_seq "
            "FROM logins_checked) ORDER BY seq",
            (self._logins_after, LOGIN_TAG, cutoff),
        ).fetchall()
        last = writer.execute(
            "SELECT max(seq) FROM app_events WHERE seq > ? AND received_at <= ?",
            (self._logins_after, cutoff),
        ).fetchone()[0]
        self._logins_after = last or self._logins_after
        alerts: list[AlertRow | None] = []
        for seq, user, details in rows:
            session = _session_of(details)
            known = (
                session
                and writer.execute(
                    "SELECT 1 FROM logins WHERE session = ? AND user_id IS ? AND event_seq = ?",
                    (session, user, seq),
                ).fetchone()
            )
            writer.execute(
                "INSERT INTO logins_checked (event_seq, result) VALUES (?, ?)",
                (seq, "matched" if known else "alerted"),
            )
            if not known:
                alerts.append(
                    self.channel.record(
                        writer,
                        now,
                        AlertKind.LOGIN_UNREPORTED,
                        f"the application's audit event {seq} records a login of user {user} "
                        "that was not reported to custody when it happened (a login event "
                        "written afterwards, or a session minted without logging in)",
                        holder_user_id=user,
                        severity=Severity.CRITICAL,
                    )
                )
        return alerts


def _session_of(details: str) -> str | None:
    try:
        parsed = json.loads(details) if details else {}
    except ValueError:
        return None
    session = parsed.get("session") if isinstance(parsed, dict) else None
    return session if isinstance(session, str) else None
