"""`yobikake tenancy`: the federation's member insurers and their contracts, from the
command line — what a new installation needs before its first list. The command line is
the actor (no user; the events say `source: cli`), as for `yobikake intake import`."""

import argparse
from datetime import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.translation import gettext as _

from yobikake import arguments
from yobikake.tenancy import services
from yobikake.tenancy.insurer_files import read_insurer_file
from yobikake.tenancy.models import BillingRule, Contract, Insurer


def _at_least(least: int) -> Any:
    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is not a whole number of {least} or more")
        return value

    return number


class Command(BaseCommand):
    help = "Register the federation's member insurers and their contracts."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        insurers = sub.add_parser(
            "import-insurers",
            help="Register the insurers a file lists (保険者番号, 名称[, 種別]): all or none.",
        )
        insurers.add_argument("file", type=Path)
        contract = sub.add_parser(
            "create-contract", help="Record an insurer's contract for a fiscal year."
        )
        contract.add_argument("--insurer", metavar="NUMBER", required=True)
        contract.add_argument("--fiscal-year", type=int, metavar="YYYY", required=True)
        for name in ("calling-starts", "calling-ends", "retention-until"):
            contract.add_argument(
                f"--{name}", type=arguments.day, metavar="YYYY-MM-DD", required=True
            )
        contract.add_argument(
            "--calling-hours",
            type=arguments.hours,
            metavar="HH:MM-HH:MM",
            default=(time(9, 0), time(20, 0)),
            help="the hours residents may be called (Asia/Tokyo; default 9:00-20:00)",
        )
        contract.add_argument("--unit-price", type=_at_least(0), metavar="YEN")
        contract.add_argument("--billing-rule", choices=BillingRule.values)
        contract.add_argument("--unanswered-tries", type=_at_least(1), metavar="N")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "import-insurers":
                self._import_insurers(options["file"])
            else:
                self._create_contract(options)
        except services.InsurerRowsRefused as exc:
            lines = [
                _("line %(line)s: %(message)s") % {"line": e.line, "message": e.message}
                for e in exc.errors
            ]
            raise CommandError("\n".join([str(exc), *lines])) from None
        except services.TenancyError as exc:
            raise CommandError(str(exc)) from None

    def _import_insurers(self, path: Path) -> None:
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        imported = services.import_insurers(actor=None, rows=read_insurer_file(path))
        for insurer in imported.registered:
            self.stdout.write(f"{insurer.number}\t{insurer.name}\t{insurer.get_kind_display()}")
        self.stdout.write(
            _("Registered %(new)s insurers; %(old)s were registered already, unchanged.")
            % {"new": len(imported.registered), "old": len(imported.unchanged)}
        )

    def _create_contract(self, options: dict[str, Any]) -> None:
        insurer = Insurer.objects.filter(number=options["insurer"]).first()
        if insurer is None:
            raise CommandError(f"no insurer has the number {options['insurer']}")
        terms = {
            "calling_starts": options["calling_starts"],
            "calling_ends": options["calling_ends"],
            "retention_until": options["retention_until"],
            "calling_from": options["calling_hours"][0],
            "calling_until": options["calling_hours"][1],
        }
        billing = {
            key: value
            for key, value in (
                ("unit_price_yen", options["unit_price"]),
                ("billing_rule", options["billing_rule"]),
                ("unanswered_tries", options["unanswered_tries"]),
            )
            if value is not None
        }
        existing = Contract.objects.filter(insurer=insurer, fiscal_year=options["fiscal_year"])
        if existing.filter(**terms, **billing).exists():
            self.stdout.write(_("%(contract)s: unchanged.") % {"contract": existing.get()})
            return
        with transaction.atomic():
            contract = services.create_contract(
                actor=None, insurer=insurer, fiscal_year=options["fiscal_year"], **terms
            )
            if billing:
                services.set_billing_terms(
                    actor=None,
                    contract=contract,
                    unit_price_yen=billing.get("unit_price_yen", contract.unit_price_yen),
                    rule=BillingRule(billing.get("billing_rule", contract.billing_rule)),
                    unanswered_tries=billing.get("unanswered_tries", contract.unanswered_tries),
                )
        self.stdout.write(
            _("%(contract)s: calling %(starts)s – %(ends)s, kept until %(until)s.")
            % {
                "contract": contract,
                "starts": contract.calling_starts,
                "ends": contract.calling_ends,
                "until": contract.retention_until,
            }
        )
