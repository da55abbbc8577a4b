"""The 2023 drill, on demo data: what the maintenance worker did, done here.

1. The sysadmin copies the database (every table, as a dump would hold it) and looks
   in the copy for the people on the lists: their names, kana, phones and addresses
   are not there, only ciphertext.
2. The sysadmin takes an API token and scrapes the lists' endpoints. Refused, and the
   run of refusals raises an alert.
3. The sysadmin makes their account a superuser and asks the reveal gate for a person;
   then writes a grant for themselves straight into the database and asks again. Both
   are refused; the forged grant raises a critical alert.
4. A leaked file of the copied lists surfaces — made as if the copy had been plaintext
   (`synth leak --from-store`, canaries included) — and is scoped: who, from which
   insurer's list of which fiscal year, and which lists the canaries say leaked.

Runs only on a demo installation: it touches accounts and writes to the audit log. The
values looked for in the copy, and the leaked file, are opened in bulk by the custodian,
which does so only when set up for synthetic organisations.
"""

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from yobikake.accounts.models import User
from yobikake.accounts.services import create_api_token
from yobikake.audit.models import Alert
from yobikake.incidents import canaries, services
from yobikake.incidents.models import Incident
from yobikake.intake.models import Target, TargetList
from yobikake.synth.leak import NotATestInstallation, open_targets, refuse_real_installation
from yobikake.vault.models import Grant, Purpose
from yobikake.vault.reveal import RevealRefused, reveal

SAMPLED_PEOPLE = 20


class NotADemo(Exception):
    pass


@dataclass
class DrillReport:
    copy_bytes: int = 0
    copy_values_checked: int = 0
    copy_values_found: int = 0
    stopped: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)
    incident: Incident | None = None


def _dump(path: Path) -> int:
    """Every row of every table, as text — what a copy of the database file holds."""
    with path.open("w", encoding="utf-8") as out, connection.cursor() as cursor:
        for model in apps.get_models():
            table = model._meta.db_table
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            while chunk := cursor.fetchmany(5000):
                for row in chunk:
                    out.write(
                        "\t".join(
                            bytes(v).decode("utf-8", "replace")
                            if isinstance(v, bytes | memoryview)
                            else str(v)
                            for v in row
                        )
                        + "\n"
                    )
    return path.stat().st_size


def _sample_values() -> list[str]:
    """Some stored people's values, opened by the custodian — to look for in the copy."""
    ids = Target.objects.order_by("?").values_list("pk", flat=True)[:SAMPLED_PEOPLE]
    return [
        value
        for _, person in open_targets(list(ids))
        for value in (person.name_kanji, person.name_kana, person.phone, person.address)
        if value
    ]


def _copy(report: DrillReport, work: Path) -> None:
    dump = work / "copy.tsv"
    report.copy_bytes = _dump(dump)
    text = dump.read_text(encoding="utf-8")
    values = _sample_values()
    report.copy_values_checked = len(values)
    report.copy_values_found = sum(1 for v in values if v in text)
    dump.unlink()


def _reveal_attempts(report: DrillReport, sysadmin: User) -> None:
    """A superuser made at the database (as `createsuperuser` would), asking for a
    person; then a grant for it written straight into the database."""
    target = Target.objects.filter(target_list__state=TargetList.State.ACTIVE).first()
    root = User.objects.create_superuser(
        username=f"drill-root-{timezone.now():%Y%m%d%H%M%S%f}",
        password=None,
        organization=sysadmin.organization,
    )
    try:
        reveal(root, target, Purpose.CALL)
        report.stopped.append("FAILED: a superuser reveal was allowed")
    except RevealRefused as exc:
        report.stopped.append(f"superuser reveal refused ({exc.code})")
    # A grant written straight into the database: no MAC under the key service's key.
    now = timezone.now()
    Grant.objects.create(
        holder=root,
        target=target,
        purpose=Purpose.CALL,
        issued_by=sysadmin,
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )
    try:
        reveal(root, target, Purpose.CALL)
        report.stopped.append("FAILED: a forged grant revealed a person")
    except RevealRefused as exc:
        report.stopped.append(f"reveal with a grant forged in the database refused ({exc.code})")
    User.objects.filter(pk=root.pk).update(is_active=False)


def _scrape(report: DrillReport, sysadmin: User) -> None:
    _, token = create_api_token(actor=sysadmin, name="drill", days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    request_log = logging.getLogger("django.request")
    level, request_log.level = request_log.level, logging.ERROR  # 404s are the point here
    try:
        statuses = [
            client.get(f"/api/v1/lists/{pk}").status_code
            for pk in TargetList.objects.values_list("pk", flat=True)[:20]
        ]
    finally:
        request_log.level = level
    refused = sum(1 for s in statuses if s in (401, 403, 404))
    report.stopped.append(f"API scrape: {refused} of {len(statuses)} requests refused")


def scope_synthetic_leak(*, rows: int, title: str) -> Incident:
    """A synthetic leaked copy of `rows` stored people (`synth leak --from-store`, the
    canaries of their lists included), scoped as a new incident. The drill and the
    demo's incident."""
    with tempfile.TemporaryDirectory(prefix="yobikake-leak-") as directory:
        leak = Path(directory) / "leaked-copy.csv"
        call_command(
            "synth", "leak", "--from-store", "--rows", str(rows), "--out", str(leak),
            stdout=StringIO(),
        )  # fmt: skip
        incident = services.open_incident(
            actor=None,
            title=title,
            aware_on=timezone.localdate(),
            file_name=leak.name,
            file_sha256=services.file_sha256(leak),
        )
        return services.run_scoping(incident, leak)


def run(*, rows: int = 2000) -> DrillReport:
    try:
        refuse_real_installation("drill")
    except NotATestInstallation:
        raise NotADemo from None
    if not TargetList.objects.exists():
        raise NotADemo
    sysadmin = User.objects.get(username="sysadmin")
    report = DrillReport()
    first_alert = Alert.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with tempfile.TemporaryDirectory(prefix="yobikake-drill-") as directory:
        work = Path(directory)
        try:
            _copy(report, work)
        except NotATestInstallation:  # the custodian opens only synthetic organisations
            raise NotADemo from None
        _scrape(report, sysadmin)
        _reveal_attempts(report, sysadmin)
        active = TargetList.objects.filter(state=TargetList.State.ACTIVE)
        people = Target.objects.filter(target_list__in=active).count()
        report.incident = scope_synthetic_leak(
            rows=min(rows, people - len(canaries.of_lists(active))),
            title="Drill: a leaked copy of the lists",
        )
    raised = Counter(Alert.objects.filter(pk__gt=first_alert).values_list("severity", "rule"))
    report.detected = [f"{severity}: {rule} ×{n}" for (severity, rule), n in raised.items()]
    return report


def summary(report: DrillReport) -> dict[str, Any]:
    return {
        "copy": {
            "bytes": report.copy_bytes,
            "values_looked_for": report.copy_values_checked,
            "values_found": report.copy_values_found,
        },
        "stopped": report.stopped,
        "detected": report.detected,
        "incident": report.incident.pk if report.incident else None,
    }
