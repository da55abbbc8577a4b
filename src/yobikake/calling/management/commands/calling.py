"""`yobikake calling`: campaigns and phone research from the command line. The command
line is the actor (no user; the events say `source: cli`), as for `yobikake tenancy`."""

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yobikake import arguments
from yobikake.accounts.errors import AccountError
from yobikake.calling import research, services, terms
from yobikake.calling.models import Campaign
from yobikake.intake.models import TargetList
from yobikake.tenancy.models import Insurer


def _percent(text: str) -> Decimal:
    if not text.isdigit() or int(text) > 50:
        raise argparse.ArgumentTypeError(f"{text} is not a whole percent from 0 to 50")
    return Decimal(text) / 100


class Command(BaseCommand):
    help = "Calling: campaigns and phone research."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        directory = sub.add_parser(
            "import-directory",
            help="Match a phone directory (氏名, 住所, 電話番号[, カナ氏名]) against the "
            "insurer's people waiting for phone research.",
        )
        directory.add_argument("file", type=Path)
        directory.add_argument("--insurer", metavar="NUMBER", required=True)
        directory.add_argument("--json", action="store_true", help="the counts as one JSON object")
        create = sub.add_parser(
            "create-campaign", help="Create a campaign over one list (a draft, to be started)."
        )
        create.add_argument("--list", type=int, metavar="ID", required=True, dest="list_id")
        create.add_argument("--name", default="")
        create.add_argument("--starts", type=arguments.day, metavar="YYYY-MM-DD")
        create.add_argument("--ends", type=arguments.day, metavar="YYYY-MM-DD")
        create.add_argument("--calling-hours", type=arguments.hours, metavar="HH:MM-HH:MM")
        create.add_argument("--saturdays", action="store_true")
        create.add_argument("--max-attempts", type=int, metavar="N")
        create.add_argument("--control-group", type=_percent, metavar="PERCENT")
        start = sub.add_parser("start-campaign", help="Start a draft campaign.")
        start.add_argument("campaign_id", type=int, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create-campaign":
            self._create(options)
        elif action == "start-campaign":
            self._start(options["campaign_id"])
        else:
            self._import_directory(options)

    def _create(self, options: dict[str, Any]) -> None:
        target_list = TargetList.objects.select_related("insurer").filter(pk=options["list_id"])
        if not target_list.exists():
            raise CommandError(f"no list #{options['list_id']}")
        hours = options["calling_hours"]
        settings = {
            key: value
            for key, value in (
                ("starts", options["starts"]),
                ("ends", options["ends"]),
                ("window_start", hours[0] if hours else None),
                ("window_end", hours[1] if hours else None),
                ("saturdays", options["saturdays"] or None),
                ("max_attempts", options["max_attempts"]),
                ("holdout_share", options["control_group"]),
            )
            if value is not None
        }
        found = target_list.get()
        try:
            campaign = services.create_campaign(
                actor=None,
                insurer=found.insurer,
                fiscal_year=found.fiscal_year,
                lists=[found],
                name=options["name"],
                **settings,
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"#{campaign.pk} {campaign.name}: {campaign.starts} – {campaign.ends}, "
            f"{campaign.window_start:%H:%M}–{campaign.window_end:%H:%M} (draft)"
        )
        contract, beyond = terms.needs(campaign)
        if contract is not None and beyond:
            for line in terms.describe(beyond, campaign, contract):
                self.stdout.write(f"  {line}")
            self.stdout.write(
                "The insurer must approve these terms before the campaign can start: a "
                f"supervisor asks for it on the campaign's page (/campaigns/{campaign.pk}/)."
            )

    def _start(self, campaign_id: int) -> None:
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"no campaign #{campaign_id}")
        try:
            campaign = services.start_campaign(actor=None, campaign=campaign)
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"#{campaign.pk} {campaign.name}: started (control group seed {campaign.holdout_seed})"
        )

    def _import_directory(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        insurer = Insurer.objects.filter(number=options["insurer"]).first()
        if insurer is None:
            raise CommandError(f"no insurer has the number {options['insurer']}")
        try:
            counts = research.import_directory(actor=None, insurer=insurer, path=path)
        except AccountError as exc:
            raise CommandError(f"{path.name}: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(counts.as_dict()))
            return
        self.stdout.write(
            f"{path.name}: {counts.rows} rows — {counts.matched} matched, "
            f"{counts.unmatched} unmatched, {counts.invalid} unusable; "
            f"{counts.accepted} numbers stored, {counts.ambiguous} left to researchers "
            f"(ambiguous), {counts.busy} being researched"
        )
