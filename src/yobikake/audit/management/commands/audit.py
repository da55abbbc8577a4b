import contextlib
import json
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from yobikake.audit import bytecode, chain, guards
from yobikake.audit.alerts import raise_alert_or_log
from yobikake.audit.models import Alert, Event
from yobikake.audit.queue import Tampering, reconcile_alerts
from yobikake.audit.services import append_event, sign_checkpoint_now
from yobikake.audit.startup import (
    bytecode_refusal,
    check_bytecode,
    check_guards,
    check_start_history,
    record_start,
    refusal,
)
from yobikake.audit.tags import AuditTag
from yobikake.audit.tree import MissingEvents
from yobikake.audit.verify import Problem, verify_log
from yobikake.audit.witness import countersigned_heads, submit_head
from yobikake.custody.protocol import AuditHead, CustodyRefused, CustodyUnavailable, Heartbeat
from yobikake.vault.heartbeat import beat


class Command(BaseCommand):
    # Django's checks import the URLs and every view: `verify` and `sweep` check the
    # compiled code first (a command started through `yobikake` is checked before).
    requires_system_checks: list[str] = []
    help = (
        "The audit log: verify it, export it, sign a checkpoint, run the periodic sweep, "
        "show or put back its append-only guards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Recompute the chain and check checkpoints.")
        verify.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ")
        export = sub.add_parser("export", help="Write events as JSON lines to stdout.")
        export.add_argument(
            "--since",
            required=True,
            metavar="SEQ|DATE",
            help="A sequence number, or an ISO date/time (Asia/Tokyo if no zone is given).",
        )
        sub.add_parser("checkpoint", help="Sign a checkpoint of the current head now.")
        sub.add_parser("sweep", help="Periodic job: sign a checkpoint, verify, alert.")
        guards_parser = sub.add_parser("guards", help="Show the append-only guards.")
        guards_parser.add_argument(
            "--install", action="store_true", help="Put missing guards back (recorded)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(**options)

    def _verify(self, from_seq: int, **_: Any) -> None:
        """The chain, the guards, the compiled code, the alert queue and the starts on
        record; whatever is wrong is on stderr, in a critical alert, and makes the
        command fail. The start is recorded either way."""
        checked: bytecode.Result | None = None
        self._unwitnessed = ""
        tampering: list[Tampering] = []
        unrecorded: list[str] = []
        try:
            missing = check_guards("audit")
            checked = check_bytecode("audit")
            chain_problem = self._verify_chain(from_seq)
            # Rows written to a table that is not as installed may vanish as they are
            # written: the queue is rebuilt once the guards are back.
            if not missing:
                tampering = reconcile_alerts()
                unrecorded = check_start_history()
        finally:
            record_start("audit", checked)
        failures = []
        for name in missing:
            self.stderr.write(f"append-only guard missing: {name}")
        if missing:
            failures.append(refusal(missing))
            failures.append("the alert queue was not checked: put the guards back first")
        findings = checked.findings if checked is not None else []
        for finding in findings:
            self.stderr.write(f"compiled code: {finding}")
        if findings:
            failures.append(bytecode_refusal(findings))
        if self._unwitnessed:
            self.stderr.write(self._unwitnessed)
            failures.append(self._unwitnessed)
        if chain_problem is not None:
            failures.append(
                f"the audit log is not intact: first bad event {chain_problem.seq} "
                f"({chain_problem.kind})"
            )
        for tampering_found in tampering:
            self.stderr.write(str(tampering_found))
        if tampering:
            failures.append(
                f"the alert queue was tampered with: {len(tampering)} alerts put back or "
                "removed, and a critical alert raised"
            )
        for line in unrecorded:
            self.stderr.write(line)
        if unrecorded:
            failures.append(
                f"{len(unrecorded)} starts changed controls with no alert on record; a "
                "critical alert has been raised for each"
            )
        if failures:
            raise CommandError("; ".join(failures))
        self.stdout.write(self._intact)

    def _verify_chain(self, from_seq: int) -> Problem | None:
        """The log against its chain, MACs and checkpoints and, from the first event,
        against every head custody countersigned; once it holds, the current head is
        submitted to custody for countersigning."""
        try:
            heads = self._heads() if from_seq == 1 else []
            report = verify_log(from_seq, heads=heads)
        except Exception as exc:
            # A log that crashes the verifier is a log that does not verify.
            raise_alert_or_log(
                "audit_verify_failed",
                Alert.Severity.CRITICAL,
                None,
                f"verification crashed: {type(exc).__name__}",
            )
            raise CommandError(f"the audit log could not be verified: {exc}") from exc
        if report.intact:
            self._intact = (
                f"intact: {report.checked} events ({from_seq}–{report.last_seq}), "
                f"{report.checkpoints} checkpoints, {report.heads} heads countersigned by "
                "custody"
            )
            return self._countersign() if from_seq == 1 else None
        for problem in sorted(report.problems, key=lambda p: p.seq):
            self.stderr.write(str(problem))
        first = report.first
        raise_alert_or_log("audit_verify_failed", Alert.Severity.CRITICAL, None, str(first))
        if first is not None and first.kind == "rewritten":
            # Custody judges the rewritten head too, and alerts on its own channel.
            with contextlib.suppress(CustodyRefused, CustodyUnavailable, MissingEvents):
                submit_head()
        return first

    def _heads(self) -> list[AuditHead]:
        try:
            return countersigned_heads()
        except CustodyUnavailable as exc:
            self._custody_unreachable(exc)
            return []

    def _custody_unreachable(self, exc: Exception) -> None:
        """Without custody's heads the log is checked by the application's keys alone:
        what an insider holding them rewrote would pass. Said, alerted, and a failure."""
        self._unwitnessed = f"the log was not checked against custody's heads: {exc}"
        raise_alert_or_log("audit_verify_failed", Alert.Severity.WARNING, None, self._unwitnessed)

    def _countersign(self) -> Problem | None:
        """Have the verified log's head countersigned; custody refuses (and alerts) a
        log that no longer extends its last head, which verify then reports too."""
        if self._unwitnessed:
            return None
        try:
            head = submit_head()
        except CustodyUnavailable as exc:
            self._custody_unreachable(exc)
            return None
        except CustodyRefused as refused:
            problem = Problem(0, "refused by custody", str(refused))
            self.stderr.write(str(problem))
            raise_alert_or_log("audit_verify_failed", Alert.Severity.CRITICAL, None, str(problem))
            return problem
        self._intact += f"; head of {head.size} events countersigned at {head.at}"
        return None

    def _export(self, since: str, **_: Any) -> None:
        events = Event.objects.order_by("seq")
        if since.isdigit():
            events = events.filter(seq__gte=int(since))
        else:
            try:
                moment = datetime.fromisoformat(since)
            except ValueError:
                raise CommandError(
                    f"--since takes a sequence number or a date, not {since!r}"
                ) from None
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            events = events.filter(at__gte=moment)
        out = sys.stdout
        for event in events.iterator(chunk_size=5000):
            record = {name: getattr(event, name) for name in chain.FIELDS}
            record["at"] = chain.encode_time(event.at)
            record.update(hash=event.hash, mac=event.mac)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _checkpoint(self, **_: Any) -> None:
        checkpoint = sign_checkpoint_now()
        self.stdout.write(f"signed {checkpoint}" if checkpoint else "the log is empty")

    def _sweep(self, **_: Any) -> None:
        self._checkpoint()
        try:
            self._verify(from_seq=1)
        finally:
            # It ran (what it found is alerted on its own): the custodian alerts a
            # sweep that stops running (custody/watch.py).
            beat(Heartbeat.AUDIT_SWEEP)

    def _guards(self, install: bool, **_: Any) -> None:
        missing = guards.missing(connection)
        if install and missing:
            with transaction.atomic():
                guards.install(connection)
                event = append_event(
                    tag=AuditTag.GUARDS_INSTALL, actor=None, details={"missing": len(missing)}
                )
                # Said again now that the queue holds what it is given: an alert raised
                # while a trigger swallowed the queue's rows is not in it.
                raise_alert_or_log(
                    "append_only_guard_missing",
                    Alert.Severity.CRITICAL,
                    event,
                    f"put back by audit guards --install: {', '.join(missing)}",
                )
            missing = guards.missing(connection)
        named = guards.names(connection.vendor)
        for name in named:
            self.stdout.write(f"{name}: {'missing' if name in missing else 'in place'}")
        for problem in missing:
            if problem not in named:
                self.stdout.write(f"{problem}: gets round the guards")
        if missing:
            raise CommandError(f"append-only guard missing: {', '.join(missing)}")
