"""What every Yobikake process checks as it starts: the web (`wsgi.py`), the task worker
(the `db_worker` command, intake's), `yobikake demo`, and `yobikake audit verify` and
`sweep`.

- The append-only guards (audit/guards.py) must all be in place; if one is not, a
  critical alert is raised and the process refuses to start (`audit verify` reports it
  and fails instead, so the log can still be examined).
- The security-relevant settings and the installed code (audit/fingerprint.py) are
  recorded in the log, and compared with the last start the log records: a change is an
  event per setting and an alert. Nothing is kept anywhere else to compare with, so
  there is no file or row to edit that silences it.

There is no setting that skips these checks: the test suite installs the guards itself
and runs the checks only where it starts processes (or calls these commands).
"""

import json
import logging
from dataclasses import dataclass

from django.db import connection, connections, transaction

from yobikake.audit import guards
from yobikake.audit.alerts import raise_alert
from yobikake.audit.fingerprint import fingerprint
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import Detail, append_event, lock_chain_head
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import genuine

log = logging.getLogger(__name__)
# Starts looked back over for one that is genuine, past any written by SQL.
_LOOK_BACK = 50


class StartRefused(Exception):
    """A process must not start: the message says why and what to do."""


def check_guards(process: str) -> list[str]:
    """The append-only guards that are not in place, each missing one raised as a
    critical alert."""
    missing = guards.missing(connection)
    if missing:
        with transaction.atomic():
            raise_alert(
                "append_only_guard_missing",
                Alert.Severity.CRITICAL,
                None,
                f"{process} start: append-only guard missing: {', '.join(missing)}",
            )
    return missing


def refusal(missing: list[str]) -> str:
    return (
        f"append-only guard missing: {', '.join(missing)}. The audit tables accept edits "
        "and deletions; a critical alert has been raised. Find out who removed it, then "
        "run `yobikake audit guards --install`."
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


def _last_start(mac_key: bytes) -> dict[str, Detail] | None:
    """What the last genuine start recorded (one written by SQL is passed over: `audit
    verify` reports it)."""
    for event in Event.objects.filter(tag=AuditTag.PROCESS_START).order_by("-seq")[:_LOOK_BACK]:
        if genuine(event, mac_key):
            recorded: dict[str, Detail] = json.loads(event.details)
            recorded.pop("process", None)
            return recorded
    return None


def record_start(process: str) -> list[Change]:
    """Record this start's settings and code; report and alert what changed since the
    last start the log records."""
    mac_key = audit_keys().mac_key()
    now = fingerprint(mac_key)
    # Under the chain head's lock, so web workers starting together compare in turn and
    # a change is reported once.
    with transaction.atomic():
        lock_chain_head()
        last = _last_start(mac_key)
        append_event(tag=AuditTag.PROCESS_START, actor=None, details={"process": process, **now})
        if last is None:
            return []
        changes = [
            Change(key, last.get(key), now.get(key))
            for key in [*now, *(k for k in last if k not in now)]
            if last.get(key) != now.get(key)
        ]
        events = [
            append_event(
                tag=AuditTag.SETTINGS_CHANGE,
                actor=None,
                details={"process": process, "setting": c.key, "old": c.old, "new": c.new},
            )
            for c in changes
        ]
        if changes:
            raise_alert(
                "controls_changed",
                Alert.Severity.CRITICAL,
                events[0],
                f"{process} started with changed controls: " + "; ".join(map(str, changes)),
            )
    return changes


def check_at_start(process: str) -> None:
    """Refuse to start without every guard (with a critical alert); record the
    settings and code this process starts with."""
    missing = check_guards(process)
    if missing:
        raise StartRefused(refusal(missing))
    for change in record_start(process):
        log.warning("%s started with a changed control: %s", process, change)


def start_process(process: str) -> None:
    """`check_at_start` for a server about to serve: it then closes the connection the
    checks used, so no worker it forks inherits it."""
    try:
        check_at_start(process)
    finally:
        connections.close_all()
