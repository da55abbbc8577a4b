"""What every Yobikake process checks as it starts: the web (`wsgi.py`), the task worker
(the `db_worker` command, intake's), `yobikake demo`, and `yobikake audit verify` and
`sweep`; and what every other command run through `yobikake` records (cli.py).

- The append-only guards (audit/guards.py) must all be in place, and nothing else on
  the audit tables; if not, a critical alert is raised and the process refuses to start
  (`audit verify` reports it and fails instead, so the log can still be examined).
- Every compiled file Python would load instead of a source (audit/bytecode.py) must
  be what that source compiles to; if not, a critical alert and the same refusal.
- The security-relevant settings and the installed code (audit/fingerprint.py) are
  recorded in the log, and compared with the last start the log records: a change is an
  event per setting and an alert. Nothing is kept anywhere else to compare with, so
  there is no file or row to edit that silences it.
- `audit verify` and `sweep` compare every start the log holds with the one before it,
  so a start appended by hand to move the baseline (with the application's own MAC key)
  is itself a change, alerted unless its change events and alert are on the record.

Other commands (`yobikake shell`, `dbshell`, every management command) record their
start and refuse code that does not match its source, but do not refuse without the
guards: `audit guards --install`, `migrate` and the database shell are how they are put
back, and refusing a shell keeps out no one who has one.

There is no setting that skips these checks: the test suite installs the guards itself
and runs the checks only where it starts processes (or calls these commands).
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from django.db import connection, connections, transaction

from yobikake.audit import bytecode, guards
from yobikake.audit.alerts import raise_alert_or_log
from yobikake.audit.fingerprint import fingerprint
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import Detail, append_event, lock_chain_head
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import genuine

log = logging.getLogger(__name__)
# Starts looked back over for one that is genuine, past any written by SQL.
_LOOK_BACK = 50
# What a start records about itself rather than about the controls it runs with.
_NOT_COMPARED = frozenset({"process", bytecode.RECORD_KEY})


class StartRefused(Exception):
    """A process must not start: the message says why and what to do."""


def check_guards(process: str) -> list[str]:
    """What is not in place of the append-only guards (guards.missing), raised as a
    critical alert."""
    missing = guards.missing(connection)
    if missing:
        raise_alert_or_log(
            "append_only_guard_missing",
            Alert.Severity.CRITICAL,
            None,
            f"{process} start: append-only guard missing: {', '.join(missing)}",
        )
    return missing


def refusal(missing: list[str]) -> str:
    reset = (
        " A session_replication_role kept for the database or a role is reset by the "
        "database's administrator (ALTER DATABASE … RESET session_replication_role, "
        "ALTER ROLE … RESET session_replication_role)."
        if guards.KEPT_REPLICA in missing
        else ""
    )
    return (
        f"append-only guard missing: {', '.join(missing)}. The audit tables accept edits "
        "and deletions, or alerts can vanish as they are written; a critical alert has "
        "been raised. Find out who did it, then run `yobikake audit guards --install` "
        f"(it puts the guards back and removes anything else on the audit tables).{reset}"
    )


def check_bytecode(process: str, *, has_log: bool = True) -> bytecode.Result:
    """The compiled files Python would load, against their sources; any that do not
    match raised as a critical alert (when the database `has_log`). Files a recent start
    found consistent are not compiled again (bytecode.py)."""
    recorded = (
        {start.get(bytecode.RECORD_KEY) for start in _recent_starts(audit_keys().mac_key())}
        if has_log
        else set()
    )
    checked = bytecode.check(bytecode.trusted_keys({r for r in recorded if isinstance(r, str)}))
    if checked.findings and has_log:
        raise_alert_or_log(
            "bytecode_tampered",
            Alert.Severity.CRITICAL,
            None,
            f"{process} start: " + "; ".join(map(str, checked.findings)),
        )
    return checked


def bytecode_refusal(findings: list[bytecode.Finding]) -> str:
    return (
        f"compiled code that Python would run instead of the source: "
        f"{'; '.join(map(str, findings))}. A critical alert has been raised. Keep the "
        "file for the investigation, remove it, and start again."
    )


@dataclass(frozen=True)
class Change:
    key: str
    old: Detail
    new: Detail

    def __str__(self) -> str:
        if _hidden(self.old) or _hidden(self.new):
            return f"{self.key} changed"
        return f"{self.key} {_shown(self.old)} → {_shown(self.new)}"


def _hidden(value: Detail) -> bool:
    return isinstance(value, str) and value.startswith(("hmac:", "sha256:"))


def _shown(value: Detail) -> str:
    return "unset" if value is None else str(value)


def _changes(last: dict[str, Detail], now: dict[str, Detail]) -> list[Change]:
    keys = [*now, *(k for k in last if k not in now)]
    return [
        Change(key, last.get(key), now.get(key))
        for key in keys
        if key not in _NOT_COMPARED and last.get(key) != now.get(key)
    ]


def _recent_starts(mac_key: bytes) -> list[dict[str, Detail]]:
    """What the recent genuine starts recorded, newest first (one written by SQL is
    passed over: `audit verify` reports it)."""
    recent = Event.objects.filter(tag=AuditTag.PROCESS_START).order_by("-seq")[:_LOOK_BACK]
    return [json.loads(event.details) for event in recent if genuine(event, mac_key)]


def record_start(process: str, checked: bytecode.Result | None = None) -> list[Change]:
    """Record this start's settings and code (and the compiled files `checked` found
    consistent); report and alert what changed since the last start the log records."""
    mac_key = audit_keys().mac_key()
    now = fingerprint(mac_key)
    kept = bytecode.keep(checked.consistent) if checked is not None else None
    # Under the chain head's lock, so web workers starting together compare in turn and
    # a change is reported once.
    with transaction.atomic():
        lock_chain_head()
        recent = _recent_starts(mac_key)
        start = append_event(
            tag=AuditTag.PROCESS_START,
            actor=None,
            details={"process": process, **now, bytecode.RECORD_KEY: kept},
        )
        if not recent:
            return []
        changes = _changes(recent[0], now)
        if changes:
            _record_changes(process, start, changes, f"{process} started with changed controls")
    return changes


def _record_changes(process: str, start: Event, changes: list[Change], said: str) -> None:
    events = [
        append_event(
            tag=AuditTag.SETTINGS_CHANGE,
            actor=None,
            details={
                "process": process,
                "setting": c.key,
                "old": c.old,
                "new": c.new,
                "start": start.seq,
            },
        )
        for c in changes
    ]
    raise_alert_or_log(
        "controls_changed",
        Alert.Severity.CRITICAL,
        events[0],
        f"{said}: " + "; ".join(map(str, changes)),
    )


def _genuine(tag: AuditTag, mac_key: bytes) -> Iterator[tuple[Event, dict[str, Detail]]]:
    for event in Event.objects.filter(tag=tag).order_by("seq").iterator():
        if genuine(event, mac_key):
            yield event, json.loads(event.details or "{}")


def _unrecorded_changes(mac_key: bytes) -> list[tuple[Event, str, list[Change]]]:
    """Each start whose controls differ from the start before it without the change
    events for them (naming that start) and a `controls_changed` alert raised by one."""
    recorded: dict[object, set[tuple[object, ...]]] = {}
    change_seqs: dict[object, set[int]] = {}
    for event, details in _genuine(AuditTag.SETTINGS_CHANGE, mac_key):
        triple = (details.get("setting"), details.get("old"), details.get("new"))
        recorded.setdefault(details.get("start"), set()).add(triple)
        change_seqs.setdefault(details.get("start"), set()).add(event.seq)
    alerted = {
        details.get("event_seq")
        for _, details in _genuine(AuditTag.ALERT_RAISE, mac_key)
        if details.get("rule") == "controls_changed"
    }
    found = []
    for (_, before), (start, after) in pairwise(_genuine(AuditTag.PROCESS_START, mac_key)):
        changes = _changes(before, after)
        on_record = {(c.key, c.old, c.new) for c in changes} <= recorded.get(start.seq, set())
        if changes and not (on_record and change_seqs.get(start.seq, set()) & alerted):
            found.append((start, str(after.get("process")), changes))
    return found


@transaction.atomic
def check_start_history() -> list[str]:
    """Every start the log holds against the one before it: a change with no alert on
    record (a start appended by hand to move the baseline) is recorded and alerted now.
    Run by `audit verify` and `sweep`; what was found, as lines to show."""
    lock_chain_head()
    found = []
    for start, process, changes in _unrecorded_changes(audit_keys().mac_key()):
        said = f"start #{start.seq} ({process}) changed controls with no alert on record"
        _record_changes(process, start, changes, said)
        found.append(f"{said}: " + "; ".join(map(str, changes)))
    return found


def check_at_start(process: str) -> None:
    """Refuse to start without every guard, or with compiled code that does not match
    its source (with a critical alert); record the settings and code this process starts
    with."""
    missing = check_guards(process)
    if missing:
        raise StartRefused(refusal(missing))
    _record_checked_start(process)


def _record_checked_start(process: str) -> None:
    checked = check_bytecode(process)
    if checked.findings:
        raise StartRefused(bytecode_refusal(checked.findings))
    for change in record_start(process, checked):
        log.warning("%s started with a changed control: %s", process, change)


def start_process(process: str) -> None:
    """`check_at_start` for a server about to serve: it then closes the connection the
    checks used, so no worker it forks inherits it."""
    try:
        check_at_start(process)
    finally:
        connections.close_all()


def start_command(command: str, *, record: bool) -> None:
    """What a command run through `yobikake` checks before Django's own system checks
    import the URLs, and with them every view: its compiled code; and, if it is to
    `record` here (one that checks its own start does not), its start (not the guards:
    see above). A database without a log yet (a fresh home, one not yet migrated) takes
    no alert and no start."""
    process = f"command:{command}"
    has_log = _has_log()
    checked = check_bytecode(process, has_log=has_log)
    if checked.findings:
        raise StartRefused(bytecode_refusal(checked.findings))
    if record and has_log:
        for change in record_start(process, checked):
            log.warning("%s started with a changed control: %s", process, change)


def _has_log() -> bool:
    if connection.vendor == "sqlite" and not Path(connection.settings_dict["NAME"]).exists():
        return False  # asking would make the file
    return Event._meta.db_table in connection.introspection.table_names()
