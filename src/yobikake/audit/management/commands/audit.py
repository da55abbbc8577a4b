import json
import sys
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from yobikake.audit import chain
from yobikake.audit.alerts import raise_alert
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import sign_checkpoint_now
from yobikake.audit.verify import verify_log
from yobikake.audit.witness import Witness, read_witness, write_witness


class Command(BaseCommand):
    help = "The audit log: verify it, export it, sign a checkpoint, run the periodic sweep."

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

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(**options)

    def _verify(self, from_seq: int, **_: Any) -> None:
        try:
            report = verify_log(from_seq, witness=read_witness())
        except Exception as exc:
            # A log that crashes the verifier is a log that does not verify.
            with transaction.atomic():
                raise_alert(
                    "audit_verify_failed",
                    Alert.Severity.CRITICAL,
                    None,
                    f"verification crashed: {type(exc).__name__}",
                )
            raise CommandError(f"the audit log could not be verified: {exc}") from exc
        if report.intact:
            if from_seq == 1 and report.last_seq:
                last = Event.objects.get(seq=report.last_seq)
                write_witness(Witness(last.seq, last.hash))
            self.stdout.write(
                f"intact: {report.checked} events ({from_seq}–{report.last_seq}), "
                f"{report.checkpoints} checkpoints"
            )
            return
        for problem in sorted(report.problems, key=lambda p: p.seq):
            self.stderr.write(str(problem))
        first = report.first
        with transaction.atomic():
            raise_alert("audit_verify_failed", Alert.Severity.CRITICAL, None, str(first))
        raise CommandError(
            f"the audit log is not intact: first bad event {first.seq} ({first.kind})"
        )

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
        self._verify(from_seq=1)
