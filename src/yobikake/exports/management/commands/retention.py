import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yobikake.exports import certificates, retention
from yobikake.exports.models import DeletionCertificate


class Command(BaseCommand):
    help = "Retention: shred lists past their deadline; check a deletion certificate."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        enforce = sub.add_parser(
            "enforce", help="Shred every active list past its retention deadline, certify each."
        )
        enforce.add_argument(
            "--dry-run", action="store_true", help="List what would be shredded; change nothing."
        )
        enforce.add_argument("--json", action="store_true", help="Print the outcome as JSON.")
        check = sub.add_parser(
            "verify-certificate", help="Check a deletion certificate against the audit log."
        )
        check.add_argument("certificate_id", type=int, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "enforce":
            self._enforce(dry_run=options["dry_run"], as_json=options["json"])
        else:
            self._verify(options["certificate_id"])

    def _enforce(self, *, dry_run: bool, as_json: bool) -> None:
        result = retention.enforce_retention(dry_run=dry_run)
        record = result.as_record()
        if as_json:
            self.stdout.write(json.dumps(record, ensure_ascii=False))
        else:
            verb = "would shred" if dry_run else "due"
            for row in record["due"]:
                self.stdout.write(
                    f"{verb}: list #{row['list_id']} (insurer {row['insurer']}, "
                    f"FY{row['fiscal_year']}, {row['rows']} rows, "
                    f"deadline {row['retention_until']})"
                )
            for row in record["shredded"]:
                self.stdout.write(
                    f"shredded: list #{row['list_id']}, certificate #{row['certificate_id']}"
                )
            for row in record["failed"]:
                self.stderr.write(f"failed: list #{row['list_id']}: {row['error']}")
            for contract_id in record["moved_deadlines"]:
                self.stderr.write(
                    f"contract #{contract_id}: its retention deadline was moved in the "
                    "database; the record's is used (critical alert raised)"
                )
            if not record["due"]:
                self.stdout.write("no list is past its retention deadline")
        if result.failed:
            raise CommandError(f"{len(result.failed)} list(s) could not be shredded")

    def _verify(self, certificate_id: int) -> None:
        certificate = DeletionCertificate.objects.filter(pk=certificate_id).first()
        if certificate is None:
            raise CommandError(f"no deletion certificate #{certificate_id}")
        problems = certificates.verify(certificate)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"certificate #{certificate_id} does not verify")
        self.stdout.write(
            f"certificate #{certificate_id} verifies: list #{certificate.list_id} shredded "
            f"(audit event {certificate.event_seq}, checkpoint @{certificate.checkpoint_seq})"
        )
