"""The custodian as the audit log's witness (custody/countersign.py), from the
application's side: have the log's head countersigned, and fetch the heads custody holds.

A head is submitted every YOBIKAKE_AUDIT_CHECKPOINT_EVERY events (once the event that
completes them is committed: a head of a transaction later rolled back would not extend
into the log that follows) and by `audit sweep` and `audit verify`. Its consistency
proof starts from the last head custody countersigned, which custody names, so the
application keeps no state of its own here: a witness file on the application host
would be rewritten by whoever rewrites the log.
"""

import logging

from django.db import transaction

from yobikake.audit.alerts import raise_alert_or_log
from yobikake.audit.models import Alert
from yobikake.audit.tree import LogTree, MissingEvents, log_size
from yobikake.custody.protocol import (
    AuditHead,
    CustodyRefused,
    CustodyUnavailable,
    HeadSubmission,
    Refusal,
)
from yobikake.vault.custodian import CustodianPort, custodian

logger = logging.getLogger(__name__)
# Submitters that lose a race to another get told so and try again this often.
ATTEMPTS = 3


def submit_head(port: CustodianPort | None = None) -> AuditHead:
    """Have the log's current head countersigned by custody, with the consistency proof
    from the last head it countersigned. `CustodyRefused(WITNESS_INCONSISTENT)` when the
    log no longer extends that head (custody has raised its alert);
    `CustodyUnavailable` when custody cannot be reached."""
    port = port or custodian()
    for attempt in range(ATTEMPTS):
        last = port.latest_head()
        tree = LogTree(log_size())
        old_size = min(last.size, tree.size)  # a log shorter than custody's head: refused
        submission = HeadSubmission(
            size=tree.size,
            root=tree.root().hex(),
            old_size=last.size,
            proof=[h.hex() for h in tree.consistency(old_size, tree.size)],
        )
        tree.save()
        try:
            return port.countersign(submission)
        except CustodyRefused as refused:
            if refused.code != Refusal.WITNESS_MOVED or attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def submit_head_after_commit() -> None:
    """Submit the head once the current transaction commits; a failure is logged and
    alerted, never the caller's (custody alerts on what matters: a rewritten past)."""
    transaction.on_commit(_submit_quietly)


def _submit_quietly() -> None:
    try:
        submit_head()
    except (CustodyRefused, CustodyUnavailable, MissingEvents, ValueError) as exc:
        logger.warning("audit head not countersigned: %s", exc)
        raise_alert_or_log(
            "audit_head_not_countersigned",
            Alert.Severity.CRITICAL
            if isinstance(exc, CustodyRefused) and exc.code == Refusal.WITNESS_INCONSISTENT
            else Alert.Severity.WARNING,
            None,
            f"custody did not countersign the audit log's head: {str(exc)[:200]}",
        )


def countersigned_heads(port: CustodianPort | None = None) -> list[AuditHead]:
    """Every head custody countersigned, smallest first."""
    port = port or custodian()
    heads: list[AuditHead] = []
    while page := port.audit_heads(heads[-1].size if heads else 0):
        heads.extend(page)
    return heads
