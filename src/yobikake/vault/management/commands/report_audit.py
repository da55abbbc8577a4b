"""`yobikake report_audit [--every SECONDS]`: report the audit log to the custodian, which
reconciles it with its ledger (vault/audit_report.py). Once, or every SECONDS until
stopped (the demo runs it beside the web server; production runs it as a service)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable
from yobikake.vault.audit_report import report, report_every


class Command(BaseCommand):
    help = (
        "Report the audit log's new events to the custodian for reconciliation (the "
        "custodian alerts when reports stop)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=float,
            metavar="SECONDS",
            help="Report again every SECONDS until stopped (at most the custodian's deadline).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["every"]:
            report_every(options["every"], self.stdout.write)
            return
        try:
            done = report()
        except (CustodyRefused, CustodyUnavailable) as exc:
            raise CommandError(f"custodian: {exc}") from exc
        self.stdout.write(
            f"reported {done.events} audit events; the custodian holds them through "
            f"{done.through.through_seq}"
        )
