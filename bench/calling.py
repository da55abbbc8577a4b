"""100 simulated operators against the served app on PostgreSQL, served the way
production serves it (gunicorn, DEBUG off, persistent database connections), each
looping "next call" → outcome with a 1–3 s pause between actions — about 30 times a
real centre's peak rate — for a bounded run.

    .venv/bin/python bench/calling.py [--operators 100] [--seconds 60] [--targets 20000]
                                      [--workers CORES] [--threads 4]

Prints one JSON line: p50/p95/p99 latency of next call (checkout and reveal, one
request) and of outcome, throughput, errors, and double assignments — counted twice:
by the operators (a person handed out while another operator held them) and from the
database afterwards (two grants on one person alive at the same moment). Goals
(issue 6): p95 <= 100 ms, zero errors, zero double assignments.

Every next call reveals through the custodian, a process of its own beside gunicorn
(`yobikake custodian serve`, mutual TLS; bench/common.py), which also makes the list's
key pair when it is loaded and names the rows the campaign leaves out; the run reports
the custodian's CPU time.

The campaign (over a list of the current fiscal year, under the demo's contract for this
year) calls all day with Saturdays, so the run works at any hour; on a Sunday or a public
holiday the rules close every campaign and the bench says so.
The operators' hourly reveal budget is raised for the run (a real operator reveals far
fewer people an hour than these do) and calling hours are the whole day, in the
application and in custody.
"""

import argparse
import http.client
import itertools
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(__file__))
from common import (
    PG_BASE,
    BenchCustodian,
    confirm_holders,
    custodian_process,
    family_cpu_s,
    machine,
    postgres_cpu_s,
)

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ["no_answer", "busy", "voicemail", "considering", "intends", "declined"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


def setup(operators: int, targets: int) -> tuple[int, list[str]]:
    """The demo's organisations, a synthetic list of `targets` people, a running
    campaign over it, `operators` operators assigned; a verified session cookie for
    each operator. Returns (campaign id, cookies)."""
    from datetime import time as clock
    from datetime import timedelta

    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.test import Client
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from yobikake.accounts import services as accounts
    from yobikake.accounts.models import Organization, User
    from yobikake.accounts.permissions import OrganizationKind, Role
    from yobikake.accounts.sessions import record_login
    from yobikake.calling import services as calling
    from yobikake.intake.services import load_target_list
    from yobikake.synth.demo import contract_this_year, load_demo
    from yobikake.synth.people import synthetic_people
    from yobikake.tenancy.models import Insurer

    call_command("migrate", verbosity=0)
    load_demo()
    fed_admin = User.objects.get(username="fed-admin")
    sysadmin = User.objects.get(username="sysadmin")
    supervisor = User.objects.get(username="supervisor")
    staff = User.objects.get(username="staff-gifu")
    insurer = Insurer.objects.get(name="岐阜市")
    # A list of this fiscal year, under the demo's contract that allows calls at any hour:
    # a campaign lies within its contract.
    year = contract_this_year(insurer)
    people = synthetic_people(targets, seed=1, fiscal_year=year.year)
    target_list = load_target_list(
        actor=staff, insurer=insurer, fiscal_year=year.year, people=people
    )
    today = timezone.localdate()
    campaign = calling.create_campaign(
        actor=supervisor,
        insurer=insurer,
        fiscal_year=year.year,
        lists=[target_list],
        starts=max(today - timedelta(days=1), year.starts),
        ends=min(today + timedelta(days=1), year.ends),
        window_start=clock(0, 0),
        window_end=clock.max,
        saturdays=True,
    )
    centre = Organization.objects.get(kind=OrganizationKind.CALL_CENTRE)
    users = []
    for n in range(operators):
        user = accounts.create_user(
            actor=sysadmin,
            username=f"bench-op-{n:03d}",
            organization=centre,
            password=secrets.token_urlsafe(24),
            expires_at=timezone.now() + timedelta(days=1),
        )
        accounts.approve_role(
            actor=fed_admin,
            assignment=accounts.request_role(actor=sysadmin, user=user, role=Role.OPERATOR),
        )
        users.append(user)
    confirm_holders([(user.pk, Role.OPERATOR.value, None) for user in users])
    # Read again: the approval reset each account's password, which sessions are bound to.
    users = list(User.objects.filter(pk__in=[u.pk for u in users]).order_by("username"))
    calling.assign_operators(actor=supervisor, campaign=campaign, operators=users)
    calling.start_campaign(actor=supervisor, campaign=campaign, seed=1)
    cookies = []
    for user in users:
        device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
        client = Client()
        client.force_login(user, backend="yobikake.accounts.backends.ExpiringAccountBackend")
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        # Recorded as the login view records a login: a session without one is refused.
        with transaction.atomic():
            record_login(session=session, user=user, details={"device_id": device.pk})
        session.save()
        cookies.append(
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
    return campaign.pk, cookies


class Operator(threading.Thread):
    """One simulated operator: next call → pause → outcome → pause, until the end."""

    held: dict[int, str] = {}  # call target → operator holding it, across operators
    held_lock = threading.Lock()

    def __init__(self, name: str, port: int, cookie: str, until: float, seed: int) -> None:
        super().__init__(name=name, daemon=True)
        self.port, self.cookie, self.until = port, cookie, until
        self.rng = random.Random(seed)
        self.next_ms: list[float] = []
        self.outcome_ms: list[float] = []
        self.errors: list[str] = []
        self.doubles = 0
        self.csrf = ""

    def _request(self, method: str, path: str, form: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        body = urlencode(form or {})
        headers = {"Cookie": self.cookie, "Host": "127.0.0.1"}
        if method == "POST":
            headers |= {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": self.csrf,
                "Cookie": f"{self.cookie}; csrftoken={self.csrf_cookie}",
                "Referer": f"http://127.0.0.1:{self.port}/calls/",
            }
        # A new connection per request, as a browser whose keep-alive ran out between
        # actions would open (the pauses outlast gunicorn's keep-alive).
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body if method == "POST" else None, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        return response.status, text, time.perf_counter() - start, response

    def run(self) -> None:
        try:
            _, text, _, response = self._request("GET", "/calls/")
            self.csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)
            set_cookie = response.getheader("Set-Cookie") or ""
            self.csrf_cookie = re.search(r"csrftoken=([^;]+)", set_cookie).group(1)
        except Exception as exc:
            self.errors.append(f"start: {exc!r}")
            return
        time.sleep(self.rng.uniform(0, 3))
        while time.monotonic() < self.until:
            try:
                self._one_call()
            except Exception as exc:
                self.errors.append(repr(exc))

    def _one_call(self) -> None:
        status, text, seconds, _ = self._request("POST", "/calls/next/", {})
        match = re.search(r'data-call-target="(\d+)"', text)
        if status != 200 or match is None:
            self.errors.append(f"next: {status}")
            time.sleep(1)
            return
        self.next_ms.append(seconds)
        call_target = int(match.group(1))
        with self.held_lock:
            if self.held.get(call_target, self.name) != self.name:
                self.doubles += 1
            self.held[call_target] = self.name
        time.sleep(self.rng.uniform(1, 3))
        with self.held_lock:
            self.held.pop(call_target, None)
        form = {"code": self.rng.choice(OUTCOMES)}
        status, _, seconds, _ = self._request("POST", f"/calls/{call_target}/outcome/", form)
        if status != 302:
            self.errors.append(f"outcome: {status}")
        else:
            self.outcome_ms.append(seconds)
        time.sleep(self.rng.uniform(1, 3))


def overlapping_grants() -> int:
    """Pairs of call grants on one person whose lives overlap (from the database)."""
    from yobikake.vault.models import Grant

    by_target: dict[int, list[tuple[float, float]]] = {}
    for target_id, issued, released, expires in Grant.objects.filter(purpose="call").values_list(
        "target_id", "issued_at", "released_at", "expires_at"
    ):
        end = released or expires
        by_target.setdefault(target_id, []).append((issued.timestamp(), end.timestamp()))
    overlaps = 0
    for spans in by_target.values():
        spans.sort()
        overlaps += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    return overlaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--operators", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--targets", type=int, default=20_000)
    # One gunicorn process per core, a few threads each (to overlap database waits):
    # the best of 2x4, 3x8, 4x2, 4x4 and 6 single-threaded processes measured here.
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with custodian_process() as custodian:
        print(json.dumps(run(args, custodian), ensure_ascii=False))


def run(args: argparse.Namespace, custodian: BenchCustodian) -> dict[str, object]:
    """A fresh database set up, served, worked by the operators; the result line."""
    dbname = f"yobikake_bench_calling_{os.getpid()}"
    home = tempfile.mkdtemp(prefix="yobikake-bench-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "yobikake.settings",
        "YOBIKAKE_HOME": home,
        "DATABASE_URL": f"{PG_BASE}/{dbname}",
        "YOBIKAKE_REVEAL_BUDGET_OPERATOR": "1000000",
        # As the custodian's (bench/common.py): the run is within calling hours whenever
        # it runs (outside them each reveal also looks for an open off-hours alert).
        "YOBIKAKE_CALLING_HOURS": "0-24",
        "YOBIKAKE_SECURE_COOKIES": "false",
        "YOBIKAKE_DEBUG": "false",
    }
    os.environ.update(env)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", dbname], check=True)
    server = None
    try:
        import django

        django.setup()
        from django.db import connection

        campaign_id, cookies = setup(args.operators, args.targets)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as a database in use would have its statistics
        connection.close()
        port = _free_port()
        server = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/gunicorn"),
                "yobikake.wsgi:application",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(args.workers),
                "--worker-class", "gthread" if args.threads > 1 else "sync",
                "--threads", str(args.threads),
                "--log-level", "warning",
            ],
            env=env,
            cwd=ROOT,
        )  # fmt: skip
        _wait_for(port)
        until = time.monotonic() + args.seconds
        operators = [
            Operator(f"op{n}", port, cookie, until, seed=n) for n, cookie in enumerate(cookies)
        ]
        started, custodian_cpu = time.monotonic(), custodian.cpu_s()
        cpu_before = _cpu(server.pid)
        for operator in operators:
            operator.start()
        for operator in operators:
            operator.join()
        elapsed = time.monotonic() - started
        cpu = {name: round(s - cpu_before[name], 1) for name, s in _cpu(server.pid).items()}
        next_ms = [s for o in operators for s in o.next_ms]
        outcome_ms = [s for o in operators for s in o.outcome_ms]
        errors = [e for o in operators for e in o.errors]
        result = {
            "bench": "calling",
            **machine(),
            "database": "postgresql",
            "server": f"gunicorn, {args.workers} workers x {args.threads} threads",
            "operators": args.operators,
            "seconds": round(elapsed, 1),
            "targets": args.targets,
            "campaign": campaign_id,
            "next_call_ms": {
                "p50": _percentile(next_ms, 0.50),
                "p95": _percentile(next_ms, 0.95),
                "p99": _percentile(next_ms, 0.99),
                "mean": round(statistics.fmean(next_ms) * 1000, 1) if next_ms else 0,
                "count": len(next_ms),
            },
            "outcome_ms": {
                "p50": _percentile(outcome_ms, 0.50),
                "p95": _percentile(outcome_ms, 0.95),
                "p99": _percentile(outcome_ms, 0.99),
                "mean": round(statistics.fmean(outcome_ms) * 1000, 1) if outcome_ms else 0,
                "count": len(outcome_ms),
            },
            "calls_per_s": round(len(outcome_ms) / elapsed, 1),
            "requests_per_s": round((len(next_ms) + len(outcome_ms)) / elapsed, 1),
            "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5],
            "double_assignments_seen": sum(o.doubles for o in operators),
            "double_assignments_db": overlapping_grants(),
            # The custodian's CPU time while the operators worked (it shares the cores).
            "custodian_cpu_s": round(custodian.cpu_s() - custodian_cpu, 1),
            # Where the two cores went while the operators worked, and per call (a next
            # call and its outcome): the served app, PostgreSQL (all of its processes),
            # the operators' load generator (this process).
            "cpu_s": cpu,
            "cpu_ms_per_call": {
                name: round(1000 * s / max(len(outcome_ms), 1), 1) for name, s in cpu.items()
            },
            "goals": {"p95_ms": "<= 100", "errors": 0, "double_assignments": 0},
        }
        return result
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", dbname], check=False
        )


def _cpu(server_pid: int) -> dict[str, float]:
    times = os.times()
    return {
        "app": family_cpu_s(server_pid),
        "postgresql": postgres_cpu_s(),
        "load_generator": times.user + times.system,
    }


def _wait_for(port: int) -> None:
    for _ in range(200):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
