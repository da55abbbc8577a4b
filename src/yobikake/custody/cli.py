"""`yobikake custodian …`: the custody domain's own command line, run by the security
officer on the custody host. It loads no Django and reads nothing of the application's
settings: its home is given (`--home`), or $YOBIKAKE_CUSTODY_HOME, or `custody/` under
$YOBIKAKE_HOME (default `var`), computed here as the application's settings compute
YOBIKAKE_HOME.

    yobikake custodian init [--home DIR] [--client-dir DIR] [--server-name NAME …] [--synthetic]
        [--approver-origin URL]
    yobikake custodian serve [--home DIR] [--bind HOST:PORT] [--threads N]
    yobikake custodian status [--home DIR]
    yobikake custodian ledger verify [--home DIR]
    yobikake custodian alerts [--home DIR] [--limit N]
    yobikake custodian openbao-setup [--home DIR] --addr URL --ca-file PEM
        --app-token-out FILE [--admin-token-file FILE] [--bind-cidr CIDR …]
    yobikake custodian reconcile [--home DIR]
    yobikake custodian recipient [--home DIR] INSURER_ID AGE_KEY
    yobikake custodian public-key [--home DIR]
    yobikake custodian holder confirm [--home DIR] USER_ID:ROLE[:INSURER_ID] … [--days N]
    yobikake custodian holder list [--home DIR]
    yobikake custodian approver add [--home DIR] NAME --user-id ID [--keep]
"""

import argparse
import errno
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hvac
from rich.console import Console
from rich.table import Table

from yobikake.custody import openbao, pki
from yobikake.custody.alerts import AlertChannel
from yobikake.custody.config import Config, ConfigError
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import (
    CustodyFileError,
    KeyringSettings,
    SigningKey,
    read_secret,
    write_private,
)
from yobikake.custody.ledger import Ledger
from yobikake.custody.reconcile import Reconciler
from yobikake.custody.server import DEFAULT_BIND, THREADS, Server


def application_home() -> Path:
    return Path(os.environ.get("YOBIKAKE_HOME") or "var")


def default_home() -> Path:
    return Path(os.environ.get("YOBIKAKE_CUSTODY_HOME") or application_home() / "custody")


def default_client_dir() -> Path:
    """Where the application's settings look for its client certificate by default
    (YOBIKAKE_CUSTODIAN_CLIENT_DIR)."""
    return Path(os.environ.get("YOBIKAKE_CUSTODIAN_CLIENT_DIR") or application_home() / "custodian")


class Refused(Exception):
    """What the command cannot do, said to the person who ran it."""


def init(
    home: Path,
    client_dir: Path,
    server_names: Sequence[str],
    *,
    synthetic: bool = False,
    approver_origin: str | None = None,
) -> list[Path]:
    """The custody home (settings, signing key) and the TLS files of both sides; what
    exists is kept. `synthetic`: a new home for synthetic organisations only;
    `approver_origin`: where a new home's approvers' page is reached."""
    try:
        Config.init(home, synthetic=synthetic, approver_origin=approver_origin)
        return pki.issue(home, client_dir, server_names=server_names)
    except (ConfigError, pki.PkiError) as exc:
        raise Refused(str(exc)) from None


def serve(home: Path, bind: str, threads: int) -> None:
    try:
        Config.load(home)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    if not pki.ServerFiles.of(home).exist():
        raise Refused(f"{home} has no TLS certificates: run `yobikake custodian init` first")
    _check_free(bind)
    Server(home, bind, threads).run()


def openbao_setup(
    home: Path,
    addr: str,
    ca_file: Path,
    admin_token: str,
    app_token_out: Path,
    bind_cidrs: Sequence[str],
) -> openbao.Done:
    """`custody.openbao.setup` with an administrator's token; the application's token
    goes to `app_token_out` (0600), for the application host."""
    if not ca_file.is_file():
        raise Refused(f"{ca_file} is missing: OpenBao's CA certificate (PEM)")
    admin = hvac.Client(url=addr, token=admin_token, verify=str(ca_file), timeout=30)
    try:
        done = openbao.setup(admin, home, ca_file=ca_file, bind_cidrs=tuple(bind_cidrs))
    except (ConfigError, CustodyFileError) as exc:
        raise Refused(str(exc)) from None
    except hvac.exceptions.VaultError as exc:
        raise Refused(f"OpenBao refused: {exc}") from None
    except Exception as exc:  # connection refused, TLS
        raise Refused(f"OpenBao unreachable at {addr}: {exc}") from None
    write_private(app_token_out, (done.app_token + "\n").encode())
    return done


def _admin_token(path: Path | None) -> str:
    if path is not None:
        try:
            return read_secret(path)
        except CustodyFileError as exc:
            raise Refused(str(exc)) from None
    token = os.environ.get("BAO_TOKEN")
    if not token:
        raise Refused("give --admin-token-file, or an administrator's token in $BAO_TOKEN")
    return token


def ledger(home: Path) -> Ledger:
    """The home's ledger, read by a command beside a running server (WAL)."""
    try:
        config = Config.load(home)
        return Ledger(config.ledger_path, SigningKey.load(config.signing_key_path))
    except (ConfigError, CustodyFileError) as exc:
        raise Refused(str(exc)) from None


def status(home: Path, console: Console) -> None:
    try:
        config = Config.load(home)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    book = ledger(home)
    try:
        head, keys, alerts = book.head(), book.list_keys(), book.alerts()
        beats = _last_beats(book)
    finally:
        book.close()
    files = pki.ServerFiles.of(home)
    table = Table(title=f"Custodian — {home}", show_header=False)
    table.add_column()
    table.add_column()
    table.add_row("keyring", _keyring(config.keyring))
    table.add_row("holder budget / hour", _budgets(config.holder_hourly))
    table.add_row("centre budget / hour", str(config.centre_hourly))
    table.add_row("centre budget / minute", str(config.centre_per_minute))
    table.add_row("seats", str(config.seats))
    table.add_row("bulk export", f"≤ {config.bulk_max_rows} rows, ≤ {config.bulk_per_day} a day")
    table.add_row("synthetic", "yes: may open everything in bulk" if config.synthetic else "no")
    table.add_row("calling hours", "{}:00–{}:00 Asia/Tokyo, Mon–Sat".format(*config.calling_hours))
    table.add_row("refusals before an alert", str(config.refusal_alert_threshold))
    table.add_row("alert mail", ", ".join(config.smtp.to) if config.smtp else "none (log only)")
    table.add_row("alert webhook", config.webhook.url if config.webhook else "none")
    for source, seconds in config.heartbeats.items():
        table.add_row(
            f"heartbeat {source}", f"last {beats.get(source, 'never')[:19]}, every ≤ {seconds} s"
        )
    active = sum(1 for key in keys if key.active)
    table.add_row("lists", f"{active} with a key, {len(keys) - active} shredded")
    table.add_row("ledger", f"{head.seq} entries, head {head.hash[:16]}…")
    critical = sum(1 for alert in alerts if alert.severity == "critical")
    table.add_row("alerts", f"{len(alerts)} ({critical} critical)")
    for name, path in (("CA", files.ca), ("server certificate", files.cert)):
        table.add_row(
            f"{name} valid until",
            pki.expiry(path).date().isoformat() if path.exists() else "missing: run init",
        )
    console.print(table)


def _last_beats(book: Ledger) -> dict[str, str]:
    """When each source last beat (watch.py), in UTC; none before a server made the
    table."""
    try:
        return dict(book.query("SELECT source, at FROM heartbeats"))
    except sqlite3.OperationalError:
        return {}


def _keyring(settings: KeyringSettings) -> str:
    if settings.kind != "openbao":
        return settings.kind
    login = "AppRole" if settings.role_id else "token file"
    return f"openbao {settings.addr} mount {settings.mount} ({login})"


def _budgets(budgets: dict[str, int]) -> str:
    return ", ".join(f"{role} {n}" for role, n in sorted(budgets.items()))


def verify_ledger(home: Path, console: Console) -> bool:
    book = ledger(home)
    try:
        found = book.verify()
    finally:
        book.close()
    if found.ok:
        console.print(f"Ledger verified: {found.entries} entries, chain and signed head intact.")
    else:
        where = f"entry {found.first_bad}" if found.first_bad is not None else "the head"
        console.print(f"[bold red]Ledger broken at {where}[/]: {found.problem}")
    return found.ok


def show_alerts(home: Path, limit: int, console: Console) -> None:
    book = ledger(home)
    try:
        alerts = book.alerts()[-limit:]
    finally:
        book.close()
    if not alerts:
        console.print("No custody alerts.")
        return
    table = Table(title="Custody alerts (newest last)")
    for column in ("#", "at (UTC)", "severity", "kind", "holder", "list", "ledger", "summary"):
        table.add_column(column)
    for alert in alerts:
        table.add_row(
            str(alert.id),
            alert.at[:19],
            f"[bold red]{alert.severity}[/]" if alert.severity == "critical" else alert.severity,
            alert.kind,
            "" if alert.holder_user_id is None else str(alert.holder_user_id),
            "" if alert.list_id is None else str(alert.list_id),
            str(alert.ledger_seq),
            alert.summary,
        )
    console.print(table)


def reconcile(home: Path) -> dict[str, object]:
    """One reconciliation pass beside (or instead of) the serving custodian's own: the
    ledger against the application's reported audit events; alerts on custody's channel."""
    try:
        config = Config.load(home)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    book = ledger(home)
    channel = AlertChannel(config, book, lambda: datetime.now(UTC))
    try:
        reconciler = Reconciler(
            book, channel, grace=config.reconcile_grace, deadline=config.report_deadline
        )
        summary = reconciler.run()
        channel.flush()
        return summary
    finally:
        channel.close()
        book.close()


def confirm_recipient(home: Path, insurer_id: int, recipient: str) -> int | None:
    """The security officer confirms an insurer's age key, read out by the insurer
    (not taken from the application); the ledger entry's seq."""
    try:
        custodian = Custodian(home)
    except CustodyFileError as exc:
        raise Refused(str(exc)) from None
    try:
        return custodian.confirm_recipient(insurer_id, recipient)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    finally:
        custodian.close()


# How long an approver's enrolment link can be used.
ENROL_HOURS = 24


def _with_custodian[T](home: Path, act: "Callable[[Custodian], T]") -> T:
    try:
        custodian = Custodian(home)
    except CustodyFileError as exc:
        raise Refused(str(exc)) from None
    try:
        return act(custodian)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    finally:
        custodian.close()


def confirm_holders(home: Path, holders: Sequence[str], days: int) -> list[int | None]:
    """The security officer confirms roles in custody's registry of holders, on the
    custody host (a first approver; the demo's seeded roles), each `USER_ID:ROLE` or
    `USER_ID:ROLE:INSURER_ID`; each one's ledger entry (None: held already)."""
    parsed = []
    for holder in holders:
        user_id, _, rest = holder.partition(":")
        role, _, insurer_id = rest.partition(":")
        if not (user_id.isdecimal() and role and (not insurer_id or insurer_id.isdecimal())):
            raise Refused(f"{holder!r} is not USER_ID:ROLE or USER_ID:ROLE:INSURER_ID")
        parsed.append((int(user_id), role, int(insurer_id) if insurer_id else None))
    until = datetime.now(UTC) + timedelta(days=days)
    return _with_custodian(
        home,
        lambda c: [
            c.confirm_holder(user_id, role, insurer, until, by="security-officer")
            for user_id, role, insurer in parsed
        ],
    )


def show_holders(home: Path, console: Console) -> None:
    rows = _with_custodian(home, lambda c: c.registry.holders())
    table = Table(title="Holders confirmed in custody")
    for column in ("user", "role", "insurer", "until", "confirmed by", "revoked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.user_id),
            row.role,
            "" if row.insurer_id is None else str(row.insurer_id),
            row.until[:16],
            row.confirmed_by,
            (row.revoked_at or "")[:16],
        )
    console.print(table)


def add_approver(home: Path, name: str, user_id: int, *, keep: bool = False) -> str | None:
    """An approver to enrol a passkey on the custodian's page; the one-time link, for the
    security officer to hand to that person (not through the application). `keep`: an
    approver of that name is left as it is (None)."""

    def add(custodian: Custodian) -> str | None:
        now = datetime.now(UTC)
        token = custodian.registry.add_approver(
            name, user_id, now + timedelta(hours=ENROL_HOURS), now, keep=keep
        )
        return f"{custodian.config.approver_origin}/enrol/{token}" if token else None

    return _with_custodian(home, add)


def _check_free(bind: str) -> None:
    """Refuse at once when another process listens there (gunicorn would retry for
    seconds, while whoever started this one might take the other for it)."""
    host, _, port = bind.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Refused(f"{bind} is in use: is a custodian already running?") from None
            raise Refused(f"cannot listen on {bind}: {exc.strerror}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yobikake custodian",
        description="The custodian: the only holder of the keys that open residents' data.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--home",
            type=Path,
            default=None,
            help="The custody home (default: $YOBIKAKE_CUSTODY_HOME or $YOBIKAKE_HOME/custody).",
        )
        return sub

    init_parser = command("init", "Make the custody home, its keys and the TLS certificates.")
    init_parser.add_argument(
        "--client-dir",
        type=Path,
        default=None,
        help="Where to write the application's client certificate "
        "(default: $YOBIKAKE_CUSTODIAN_CLIENT_DIR or $YOBIKAKE_HOME/custodian).",
    )
    init_parser.add_argument(
        "--server-name",
        action="append",
        dest="server_names",
        help="A host name or address the custodian is reached at (repeatable; "
        f"default: {', '.join(pki.DEFAULT_SERVER_NAMES)}).",
    )
    init_parser.add_argument(
        "--synthetic",
        action="store_true",
        help="A new home for synthetic organisations only (the demo, drills, benchmarks): "
        "it may open everything in bulk. Refused for a home that exists and is not.",
    )
    init_parser.add_argument(
        "--approver-origin",
        default=None,
        help="Where a new home's approvers' page is reached, e.g. https://custody.example:8102 "
        "(http://localhost:PORT serves it on loopback without TLS).",
    )
    serve_parser = command("serve", "Serve the custodian (HTTPS, mutual TLS).")
    serve_parser.add_argument("--bind", default=DEFAULT_BIND, help="HOST:PORT to listen on.")
    serve_parser.add_argument("--threads", type=int, default=THREADS)
    command("status", "Settings, lists, ledger head, alerts and certificates at a glance.")
    ledger_parser = commands.add_parser("ledger", help="The custody ledger.")
    ledger_commands = ledger_parser.add_subparsers(dest="ledger_command", required=True)
    verify_parser = ledger_commands.add_parser(
        "verify", help="Check the hash chain and the signed head; exit 1 if broken."
    )
    verify_parser.add_argument("--home", type=Path, default=None)
    alerts_parser = command("alerts", "The custody alerts, newest last.")
    alerts_parser.add_argument("--limit", type=int, default=50)
    bao_parser = command(
        "openbao-setup",
        "Set up an initialised, unsealed OpenBao for custody: transit mounts, policies, "
        "the custodian's AppRole (its secret id in the home) and the application's token.",
    )
    bao_parser.add_argument("--addr", required=True, help="OpenBao's https:// address.")
    bao_parser.add_argument(
        "--ca-file", type=Path, required=True, help="The CA that signed OpenBao's certificate."
    )
    bao_parser.add_argument(
        "--admin-token-file",
        type=Path,
        default=None,
        help="An administrator's token, 0600 (default: $BAO_TOKEN).",
    )
    bao_parser.add_argument(
        "--app-token-out",
        type=Path,
        required=True,
        help="Where to write the application's token (0600), to copy to the application host.",
    )
    bao_parser.add_argument(
        "--bind-cidr",
        action="append",
        dest="bind_cidrs",
        default=[],
        help="The custody host's address (CIDR, repeatable): the custodian's secret id and "
        "tokens work from there only.",
    )
    command(
        "reconcile",
        "One reconciliation pass: the ledger against the application's reported audit "
        "events; prints a JSON summary, exit 1 when it raised an alert.",
    )
    recipient_parser = command(
        "recipient",
        "Confirm an insurer's age key: export files of that insurer go to it and no other.",
    )
    recipient_parser.add_argument("insurer_id", type=int, help="The insurer's id.")
    recipient_parser.add_argument("age_key", help="The insurer's age public key (age1…).")
    command(
        "public-key",
        "Print the custody key's public half (PEM): insurers pin it to check the audit "
        "log's countersigned heads and the deletion certificates.",
    )
    holder_parser = commands.add_parser("holder", help="Custody's registry of holders.")
    holder_commands = holder_parser.add_subparsers(dest="holder_command", required=True)
    confirm_parser = holder_commands.add_parser(
        "confirm",
        help="Confirm a role in custody for an application account (the security officer's "
        "own confirmation: a first approver, the demo's seeded roles).",
    )
    confirm_parser.add_argument("--home", type=Path, default=None)
    confirm_parser.add_argument(
        "holders",
        nargs="+",
        help="USER_ID:ROLE (operator, researcher, …) or USER_ID:ROLE:INSURER_ID for an "
        "insurer's role (insurer_staff): the application's account ids.",
    )
    confirm_parser.add_argument("--days", type=int, default=90, help="How long it lasts.")
    list_parser = holder_commands.add_parser("list", help="Every role confirmed in custody.")
    list_parser.add_argument("--home", type=Path, default=None)
    approver_parser = commands.add_parser("approver", help="Approvers and their passkeys.")
    approver_commands = approver_parser.add_subparsers(dest="approver_command", required=True)
    add_parser = approver_commands.add_parser(
        "add",
        help="Add an approver (or renew a lost passkey): prints a one-time link to enrol "
        "a passkey on the custodian's page, for the security officer to hand over.",
    )
    add_parser.add_argument("--home", type=Path, default=None)
    add_parser.add_argument("name", help="The approver's name in custody (a-z, 0-9, -, _).")
    add_parser.add_argument(
        "--user-id", type=int, required=True, help="The approver's application account id."
    )
    add_parser.add_argument(
        "--keep", action="store_true", help="Leave an approver of that name as it is."
    )
    return parser


def main(argv: Sequence[str]) -> None:
    args = _parser().parse_args(list(argv))
    home = (args.home or default_home()).resolve()
    console = Console(highlight=False)
    try:
        if args.command == "init":
            written = init(
                home,
                (args.client_dir or default_client_dir()).resolve(),
                args.server_names or pki.DEFAULT_SERVER_NAMES,
                synthetic=args.synthetic,
                approver_origin=args.approver_origin,
            )
            console.print(f"Custody home: {home}")
            for path in written:
                console.print(f"  wrote {path}")
            if not written:
                console.print("  nothing to do: everything was there")
        elif args.command == "serve":
            serve(home, args.bind, args.threads)
        elif args.command == "status":
            status(home, console)
        elif args.command == "ledger":
            if not verify_ledger(home, console):
                sys.exit(1)
        elif args.command == "alerts":
            show_alerts(home, args.limit, console)
        elif args.command == "openbao-setup":
            done = openbao_setup(
                home,
                args.addr,
                args.ca_file.resolve(),
                _admin_token(args.admin_token_file),
                args.app_token_out.resolve(),
                args.bind_cidrs,
            )
            console.print(f"Custody home {home}: keyring openbao {args.addr}, AppRole")
            console.print(f"  role id {done.role_id}; secret id in {home / openbao.SECRET_ID_FILE}")
            console.print(
                f"  the application's token (policies {openbao.APP_POLICY}, "
                f"{openbao.APP_KEYS_POLICY}) is in {args.app_token_out}"
            )
        elif args.command == "recipient":
            seq = confirm_recipient(home, args.insurer_id, args.age_key)
            console.print(f"Insurer {args.insurer_id}: export files go to {args.age_key}")
            console.print(f"  ledger entry {seq}" if seq else "  already confirmed: nothing to do")
        elif args.command == "public-key":
            print(SigningKey.load(Config.load(home).signing_key_path).public_pem(), end="")
        elif args.command == "holder" and args.holder_command == "confirm":
            entries = confirm_holders(home, args.holders, args.days)
            for holder, seq in zip(args.holders, entries, strict=True):
                said = f"(entry {seq})" if seq else "already: nothing to do"
                console.print(f"Holder {holder}: confirmed in custody {said}")
        elif args.command == "holder":
            show_holders(home, console)
        elif args.command == "approver":
            link = add_approver(home, args.name, args.user_id, keep=args.keep)
            if link is None:
                console.print(f"Approver {args.name}: there already; nothing to do")
            else:
                console.print(f"Approver {args.name}: enrol a passkey within {ENROL_HOURS} h at")
                print(link)
        elif args.command == "reconcile":
            summary = reconcile(home)
            print(json.dumps(summary, ensure_ascii=False, indent=2))
            if not summary["ok"]:
                sys.exit(1)
    except Refused as refused:
        sys.exit(f"yobikake custodian {args.command}: {refused}")
