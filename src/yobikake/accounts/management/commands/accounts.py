"""`yobikake accounts bootstrap`: a new installation's first accounts, from the command
line (no account exists yet that could make them on the web)."""

import argparse
import secrets
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts import services
from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import Organization
from yobikake.accounts.permissions import OrganizationKind, Role

# A contractor's account lasts a year at most (accounts/services.py); the first
# sysadmin's lasts a day less, unless told otherwise.
SYSADMIN_DAYS = 365


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59), tzinfo=timezone.get_default_timezone())


class Command(BaseCommand):
    help = "Create an installation's first accounts (refused once any account exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        first = sub.add_parser(
            "bootstrap",
            help="The federation's admin and security officer and the maintenance "
            "contractor's sysadmin, with their organisations; passwords printed once.",
        )
        first.add_argument("--federation", metavar="NAME", required=True)
        first.add_argument("--maintenance", metavar="NAME", required=True)
        first.add_argument("--federation-admin", metavar="USER", required=True)
        first.add_argument("--security-officer", metavar="USER", required=True)
        first.add_argument("--sysadmin", metavar="USER", required=True)
        first.add_argument(
            "--sysadmin-expires",
            type=_day,
            metavar="YYYY-MM-DD",
            help=f"the sysadmin account's last day (default: in {SYSADMIN_DAYS} days)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        federation = Organization(name=options["federation"], kind=OrganizationKind.FEDERATION)
        maintenance = Organization(name=options["maintenance"], kind=OrganizationKind.MAINTENANCE)
        last_day = options["sysadmin_expires"] or timezone.localdate() + timedelta(
            days=SYSADMIN_DAYS
        )
        first = [
            (options["federation_admin"], federation, Role.FEDERATION_ADMIN, None),
            (options["security_officer"], federation, Role.SECURITY_OFFICER, None),
            (options["sysadmin"], maintenance, Role.SYSADMIN, _end_of(last_day)),
        ]
        accounts = [
            services.FirstAccount(
                username=username,
                organization=organization,
                password=secrets.token_urlsafe(18),
                role=role,
                expires_at=expires_at,
            )
            for username, organization, role, expires_at in first
        ]
        try:
            services.bootstrap_installation(accounts=accounts)
        except AccountError as exc:
            raise CommandError(str(exc)) from None
        for a in accounts:
            line = (a.username, str(a.role.label), a.organization.name, a.password)
            self.stdout.write("\t".join(line))
        self.stdout.write(
            _(
                "Each password is shown this once: hand it to its holder, who enrols an "
                "authenticator (TOTP) at the first login."
            )
        )
