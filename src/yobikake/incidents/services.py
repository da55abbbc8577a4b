"""Incidents: a leaked file scoped against every stored list (`open_incident`, then
`run_scoping` — from the command line, or from the security officer's upload in the
background). One transaction holds the incident's result, its matches and its audit
events: a scoping that fails leaves the incident marked failed with nothing matched."""

import hashlib
import itertools
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.alerts import raise_alert
from yobikake.audit.models import Alert
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.exports import watermarks
from yobikake.incidents import canaries, scoping
from yobikake.incidents.models import Incident, Match, WatermarkMatch
from yobikake.intake.models import TargetList
from yobikake.intake.reading import UnreadableFile
from yobikake.intake.writer import insert_statement


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_INSERT_MATCH = insert_statement(
    Match._meta.db_table,
    ("incident_id", "leak_row", "target_id", "person", "target_list_id", "insurer_id",
     "fiscal_year", "tier", "keys", "canary"),
)  # fmt: skip


@audited(AuditTag.INCIDENT_OPEN)
def open_incident(
    *,
    actor: Any,
    title: str,
    aware_on: date,
    malicious: bool = True,
    file_name: str = "",
    file_sha256: str = "",
) -> Incident:
    """An incident for a leaked file, waiting to be scoped. `actor` None: the command line."""
    if actor is not None:
        require(actor, Permission.INCIDENT_ANY_MANAGE)
    incident = Incident.objects.create(
        title=title[:200] or _("Leaked file"),
        aware_on=aware_on,
        malicious=malicious,
        file_name=Path(file_name).name[:255],
        file_sha256=file_sha256,
        created_by=actor,
    )
    append_event(
        tag=AuditTag.INCIDENT_OPEN,
        actor=actor,
        details={"incident_id": incident.pk, "source": "web" if actor else "cli"},
    )
    return incident


def run_scoping(
    incident: Incident, path: Path, progress: Callable[[int], None] | None = None
) -> Incident:
    """Scope the leaked file at `path` for `incident` and record what it names."""
    Incident.objects.filter(pk=incident.pk).update(state=Incident.State.RUNNING)
    try:
        scoped = scoping.scope(path, progress)
    except UnreadableFile as exc:
        return _failed(incident, exc.code, str(exc))
    except Exception as exc:
        _failed(incident, type(exc).__name__.lower()[:40], _("Scoping failed."))
        raise
    with transaction.atomic():
        _record(incident, scoped)
    return incident


def _failed(incident: Incident, code: str, message: str) -> Incident:
    with transaction.atomic():
        incident.state = Incident.State.FAILED
        incident.error_code, incident.error_message = code, message
        incident.finished_at = timezone.now()
        incident.save()
        append_event(
            tag=AuditTag.INCIDENT_SCOPE,
            actor=incident.created_by,
            denied=code,
            details={"incident_id": incident.pk},
        )
    return incident


def _record(incident: Incident, scoped: scoping.Scoped) -> None:
    leak = scoped.leak
    lists = {
        tl.pk: tl
        for tl in TargetList.objects.filter(
            pk__in={f.list_id for f in scoped.found}
        ).select_related("insurer")
    }
    planted = canaries.of_lists(lists.values())
    tiers_of = {tier: tier for tier in scoping.TIER_ORDER}
    numbers: dict[object, int] = {}  # person → its number in this incident, from 1
    for f in scoped.found:
        numbers.setdefault(f.person, len(numbers) + 1)
    rows = (
        (
            incident.pk,
            f.row,
            f.target_id,
            numbers[f.person],
            f.list_id,
            lists[f.list_id].insurer_id,
            lists[f.list_id].fiscal_year,
            tiers_of[f.tier],
            ",".join(sorted(k.value for k in f.kinds)),
            f.target_id in planted,
        )
        for f in scoped.found
    )
    # Written out: a leak of the seed's size names a third of a million (row, person)
    # pairs, which the ORM took longer to build than the database to write.
    with connection.cursor() as cursor:
        while batch := list(itertools.islice(rows, 5000)):
            cursor.executemany(_INSERT_MATCH, batch)
    best: dict[int, str] = {}
    for f in (f for f in scoped.found if f.target_id not in planted):
        if scoping.TIER_ORDER[f.tier] > scoping.TIER_ORDER.get(best.get(f.row, ""), 0):
            best[f.row] = f.tier
    tiers = {tier: 0 for tier in scoping.TIER_ORDER}
    for tier in best.values():
        tiers[tier] += 1
    incident.state = Incident.State.SCOPED
    incident.file_kind, incident.encoding = leak.kind, leak.encoding
    incident.rows = leak.count
    incident.columns = {str(col): item for col, item in sorted(leak.columns.items())}
    incident.items = leak.items
    incident.tiers = tiers
    canary_rows = {f.row for f in scoped.found if f.target_id in planted}
    canary_rows |= {w.row for w in scoped.watermarks}
    incident.unmatched = leak.count - len(best) - len(canary_rows - set(best))
    named = [f for f in scoped.found if f.tier != scoping.POSSIBLE and f.target_id not in planted]
    incident.persons = len({f.target_id for f in named})  # records: targets on lists
    incident.people = len({f.person for f in named})  # persons (one per person, any year)
    incident.seconds = round(scoped.seconds, 2)
    incident.finished_at = timezone.now()
    incident.save()
    # The watermarks it was matched against must be the ones made with the exports.
    untrusted = watermarks.tampered()
    append_event(
        tag=AuditTag.INCIDENT_SCOPE,
        actor=incident.created_by,
        details={
            "incident_id": incident.pk,
            "rows": incident.rows,
            "persons": incident.persons,
            "people": incident.people,
            "unmatched": incident.unmatched,
            "canaries": len({f.target_id for f in scoped.found} & planted),
            "watermarks": len(scoped.watermarks),
            "watermarks_tampered": len(untrusted),
        },
    )
    _record_watermarks(incident, scoped.watermarks)
    for approval_id in untrusted:
        raise_alert(
            "watermark_tampered",
            Alert.Severity.CRITICAL,
            None,
            f"incident #{incident.pk}: the watermark rows of export (approval) #{approval_id} "
            "differ from those recorded when it was made; which export leaked cannot be "
            "trusted for it",
        )
    # Each canary in the file says which list leaked: a critical alert per canary.
    for f in scoped.found:
        if f.target_id in planted:
            append_event(
                tag=AuditTag.CANARY_TOUCH,
                actor=incident.created_by,
                insurer_id=lists[f.list_id].insurer_id,
                list_id=f.list_id,
                target_id=f.target_id,
                details={"incident_id": incident.pk, "leak_row": f.row},
            )


def _record_watermarks(incident: Incident, found: list[scoping.WatermarkFound]) -> None:
    """Each export's watermark row in the file says which export leaked: recorded, and a
    critical alert per row, as for a list's canary."""
    WatermarkMatch.objects.bulk_create(
        WatermarkMatch(
            incident=incident,
            leak_row=w.row,
            watermark_id=w.watermark_id,
            approval_id=w.approval_id,
            insurer_id=w.insurer_id,
            keys=",".join(sorted(k.value for k in w.kinds)),
        )
        for w in found
    )
    for w in found:
        append_event(
            tag=AuditTag.CANARY_TOUCH,
            actor=incident.created_by,
            insurer_id=w.insurer_id,
            details={
                "approval_id": w.approval_id,
                "incident_id": incident.pk,
                "leak_row": w.row,
                "watermark": True,
            },
        )
