import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.table import Table

from yobikake.accounts.models import User
from yobikake.accounts.selectors import active_roles
from yobikake.audit.startup import StartRefused, check_at_start
from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable
from yobikake.synth.demo import (
    DEMO_PASSWORD,
    DEMO_USERS,
    NotADemoInstallation,
    current_totp,
    demo_holders,
    load_demo,
    load_demo_campaign,
    load_demo_export,
    load_demo_finished_campaign,
    load_demo_incident,
    load_demo_lists,
    load_demo_results,
    load_demo_retention,
)
from yobikake.vault.audit_report import report
from yobikake.vault.custodian import HttpCustodian

# The demo's approvers, who confirm approvals on the custodian's page with a passkey.
APPROVERS = ("fed-admin", "security")
# Seconds between the audit log's reports to the custodian: well within its deadline.
REPORT_EVERY = 60


class Command(BaseCommand):
    help = (
        "Prepare the embedded database with synthetic demo data (the seed's 27 insurers, "
        "their contracts, one user per role, a synthetic list per demo insurer), print the "
        "logins and serve on 127.0.0.1:8000 with a task worker beside the server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="Prepare, print, exit.")
        parser.add_argument(
            "--no-lists", action="store_true", help="Skip importing the synthetic lists."
        )
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Where to serve.")
        parser.add_argument(
            "--totp", metavar="USER", help="Print a demo user's current TOTP code and exit."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["totp"]:
            try:
                self.stdout.write(current_totp(options["totp"]))
            except LookupError:
                raise CommandError(f"{options['totp']!r} is not a demo user.") from None
            return
        _stop_on_termination()
        call_command("migrate", interactive=False, verbosity=0)
        try:
            check_at_start("demo")
        except StartRefused as refused:
            raise CommandError(f"refused to start: {refused}") from None
        custodian = self._start_custodian()
        try:
            try:
                load_demo()
            except NotADemoInstallation:
                raise CommandError(
                    "This database holds real organisations; the demo loads only into an empty "
                    "or demo installation."
                ) from None
            self._confirm_recipients()
            self._confirm_holders()
            self._add_approvers()
            if not options["no_lists"]:
                rows = load_demo_lists()
                if rows:
                    self.stdout.write(f"Imported the seed's lists at a small scale: {rows} people.")
                steps = (
                    load_demo_retention,
                    load_demo_finished_campaign,
                    load_demo_results,
                    load_demo_export,
                    load_demo_campaign,
                    load_demo_incident,
                )
                for said in (step() for step in steps):
                    if said:
                        self.stdout.write(said)
            self._report()
            self._print_logins()
            if not options["no_serve"]:
                self._serve(options["addr"])
        finally:
            self._stop_process(custodian)

    def _serve(self, addr: str) -> None:
        """The web server, with a task worker beside it (list imports run there) and the
        audit log's reports to the custodian every `REPORT_EVERY` seconds."""
        yobikake = str(Path(sys.executable).with_name("yobikake"))
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "yobikake.settings"}
        helpers = [
            subprocess.Popen([yobikake, *command], env=env)  # noqa: S603 - our own command
            for command in (["db_worker"], ["report_audit", "--every", str(REPORT_EVERY)])
        ]
        try:
            call_command("runserver", addr, use_reloader=False)
        finally:
            for helper in helpers:
                helper.terminate()
            for helper in helpers:
                helper.wait(timeout=10)

    def _start_custodian(self) -> subprocess.Popen[bytes]:
        """The custodian as its own process with its own home ($YOBIKAKE_HOME/custody),
        made on first use; returns once it answers."""
        yobikake = str(Path(sys.executable).with_name("yobikake"))
        home = settings.YOBIKAKE_HOME / "custody"
        client_dir = settings.YOBIKAKE_CUSTODIAN_CLIENT_DIR
        made = subprocess.run(  # noqa: S603 - our own command
            # Synthetic: the demo's organisations are made up, and the drill and
            # `synth leak --from-store` open them in bulk.
            [
                yobikake,
                "custodian",
                "init",
                "--synthetic",
                "--home",
                home,
                "--client-dir",
                client_dir,
                "--approver-origin",
                self._approver_origin(),
            ],
            capture_output=True,
            text=True,
        )
        if made.returncode:
            raise CommandError(f"the custodian's home cannot be made: {made.stderr.strip()}")
        url = urlsplit(settings.YOBIKAKE_CUSTODIAN_URL)
        address = (url.hostname or "127.0.0.1", url.port or 443)
        # Another process answering there would be taken for this demo's custodian.
        with socket.socket() as probe:
            if probe.connect_ex(address) == 0:
                raise CommandError(
                    f"{url.netloc} is in use: stop the custodian or demo already running"
                )
        process = subprocess.Popen(  # noqa: S603 - our own command
            [yobikake, "custodian", "serve", "--home", home, "--bind", url.netloc],
            # Out of the terminal's process group: Ctrl-C reaches the demo, which stops
            # its custodian with SIGTERM (a graceful stop), never the custodian's worker
            # mid-request (a SIGINT there once left it hung on its own lock, orphaned).
            start_new_session=True,
        )
        client = HttpCustodian(settings.YOBIKAKE_CUSTODIAN_URL, client_dir)
        deadline = time.monotonic() + 30
        try:
            while True:
                if process.poll() is not None:
                    raise CommandError("the custodian did not start (see above)")
                try:
                    client.health()
                    break
                except CustodyUnavailable:
                    if time.monotonic() > deadline:
                        self._stop_process(process)
                        raise CommandError("the custodian did not answer in 30 s") from None
                    time.sleep(0.1)
        finally:
            client.close()
        self.stdout.write(f"Custodian serving on {url.netloc} (home {home}).")
        return process

    @staticmethod
    def _approver_origin() -> str:
        """The approvers' page of the demo's custodian: on loopback, the port after the
        custodian's, without TLS (a browser takes http://localhost as secure)."""
        url = urlsplit(settings.YOBIKAKE_CUSTODIAN_URL)
        return f"http://localhost:{(url.port or 443) + 1}"

    @staticmethod
    def _confirm_holders() -> None:
        """The demo plays the security officer, who confirms in custody the seeded
        accounts' roles that see personal data (the custodian opens for no other); a
        role approved later in the demo is confirmed on the custodian's page."""
        yobikake = str(Path(sys.executable).with_name("yobikake"))
        home = str(settings.YOBIKAKE_HOME / "custody")
        command = ["custodian", "holder", "confirm", "--home", home, *demo_holders()]
        done = subprocess.run(  # noqa: S603 - our own command
            [yobikake, *command], capture_output=True, text=True
        )
        if done.returncode:
            raise CommandError(f"the custodian refused the demo's roles: {done.stderr}")

    def _add_approvers(self) -> None:
        """The demo's approvers (fed-admin, security) added in custody once, each with a
        one-time link to enrol a passkey on the custodian's page: the approvals made in
        the demo are confirmed there."""
        yobikake = str(Path(sys.executable).with_name("yobikake"))
        home = str(settings.YOBIKAKE_HOME / "custody")
        for user in User.objects.filter(username__in=APPROVERS).order_by("username"):
            command = ["custodian", "approver", "add", "--home", home, user.username]
            done = subprocess.run(  # noqa: S603 - our own command
                [yobikake, *command, "--user-id", str(user.pk), "--keep"],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise CommandError(f"the custodian refused the demo's approver: {done.stderr}")
            link = done.stdout.strip().splitlines()[-1]
            if "/enrol/" in link:
                self.stdout.write(f"Approver {user.username}: enrol a passkey at {link}")

    def _report(self) -> None:
        """Report the audit log to the custodian (as it starts, and once loading is done:
        the reporter runs beside the server)."""
        try:
            report()
        except (CustodyRefused, CustodyUnavailable) as exc:
            # A database made afresh beside a custody home that was kept: the custodian
            # has its critical alert; the demo goes on.
            self.stderr.write(f"The custodian refused the audit log's report: {exc}")

    @staticmethod
    def _confirm_recipients() -> None:
        """The demo plays the security officer, who confirms in custody each insurer's
        age key (read out by the insurer): export files go to no other key."""
        from yobikake.exports.models import InsurerKey
        from yobikake.exports.selectors import current_key

        yobikake = str(Path(sys.executable).with_name("yobikake"))
        home = settings.YOBIKAKE_HOME / "custody"
        insurers = sorted(set(InsurerKey.objects.values_list("insurer_id", flat=True)))
        for key in filter(None, map(current_key, insurers)):
            command = ["custodian", "recipient", "--home", str(home), str(key.insurer_id)]
            done = subprocess.run(  # noqa: S603 - our own command
                [yobikake, *command, key.public_key], capture_output=True, text=True
            )
            if done.returncode:
                raise CommandError(f"the custodian refused the insurer's key: {done.stderr}")

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _print_logins(self) -> None:
        table = Table(title="Yobikake demo logins (password for all: " + DEMO_PASSWORD + ")")
        for column in ("user", "role", "organisation", "TOTP now"):
            table.add_column(column)
        users = {u.username: u for u in User.objects.select_related("organization")}
        for demo in DEMO_USERS:
            user = users[demo.username]
            roles = ", ".join(sorted(str(r.label) for r in active_roles(user)))
            table.add_row(demo.username, roles, user.organization.name, current_totp(demo.username))
        console = Console(file=self.stdout, width=120)
        console.print(table)
        console.print(
            "TOTP codes change every 30 s: `.venv/bin/yobikake demo --totp USER` prints the "
            "current one (demo users only)."
        )


def _stop_on_termination() -> None:
    """SIGTERM and SIGHUP (a `kill`, a service manager, a closed terminal) stop the demo
    as Ctrl-C does: the custodian and the worker run in processes of their own, and only
    the demo's own clean-up stops them; by default these signals end the demo at once
    and leave both running."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
