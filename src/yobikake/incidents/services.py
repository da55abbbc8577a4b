"""Incidents: a leaked file scoped against every stored list (`open_incident`, then
`run_scoping` — from the command line, or from the security officer's upload in the
background). One transaction holds the incident's result, its matches and its audit
events: a scoping that fails leaves the incident marked failed with nothing matched; one
whose process is killed is marked failed by the next task worker to start
(`fail_interrupted_scopings`), and either can be scoped again (`scope_again`)."""

import hashlib
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.alerts import raise_alert
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.exports import watermarks
from yobikake.incidents import canaries, scoping
from yobikake.incidents.models import Incident, Match, WatermarkMatch
from yobikake.intake import leases
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
    with running(incident):
        try:
            scoped = scoping.scope(path, progress)
            with transaction.atomic():
                _record(incident, scoped)
        except UnreadableFile as exc:
            record_failure(incident, exc.code, str(exc))
        except Exception as exc:
            record_failure(incident, type(exc).__name__.lower()[:40], _("Scoping failed."))
            raise
    return incident


SCOPING_JOB = "incidents:scoping"


@contextmanager
def running(incident: Incident) -> Iterator[None]:
    """The incident marked scoping, for the block, by a process that holds its lease
    (intake/leases.py): the lease dies with the process, however it dies."""
    with leases.holding(SCOPING_JOB, incident.pk):
        Incident.objects.filter(pk=incident.pk).update(state=Incident.State.RUNNING)
        yield


def fail_interrupted_scopings() -> list[Incident]:
    """Mark failed (`interrupted`) each incident recorded as scoping whose process is
    gone (killed, or its host restarted): it recorded nothing (its transaction died with
    it), and without this it would read "scoping" for ever. Each gets its audit event
    and an alert. The task worker calls this as it starts."""
    failed = []
    scoping_now = Incident.objects.filter(state=Incident.State.RUNNING)
    for pk in scoping_now.values_list("pk", flat=True):
        with leases.if_abandoned(SCOPING_JOB, pk) as abandoned, transaction.atomic():
            # The creator is the failure event's actor; its row is not locked (nullable).
            locked = scoping_now.select_for_update(of=("self",)).select_related("created_by")
            incident = locked.filter(pk=pk).first() if abandoned else None
            if incident is None:
                continue
            message = _("The scoping was interrupted (its process ended); nothing was recorded.")
            event = record_failure(incident, "interrupted", str(message))
            raise_alert(
                "scoping_interrupted",
                Alert.Severity.WARNING,
                event,
                f"incident #{pk}: its scoping was left running by a process that ended; "
                "marked failed, nothing recorded; the security officer can scope the file again",
            )
            failed.append(incident)
    return failed


def record_failure(incident: Incident, code: str, message: str) -> Event:
    """The incident's scoping failed (`code`), with nothing matched: on the record."""
    with transaction.atomic():
        incident.state = Incident.State.FAILED
        incident.error_code, incident.error_message = code, message
        incident.finished_at = timezone.now()
        incident.save(update_fields=["state", "error_code", "error_message", "finished_at"])
        return append_event(
            tag=AuditTag.INCIDENT_SCOPE,
            actor=incident.created_by,
            denied=code,
            details={"incident_id": incident.pk},
        )


@audited(AuditTag.INCIDENT_RESCOPE)
def scope_again(*, actor: Any, incident: Incident, file_sha256: str) -> Incident:
    """Queue an incident whose scoping failed (or was interrupted) to be scoped again.
    The leaked file is never kept, so it comes again: the same file, as its SHA-256
    shows (another file is another incident). `actor` None: the command line."""
    if actor is not None:
        require(actor, Permission.INCIDENT_ANY_MANAGE)
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.state != Incident.State.FAILED:
        raise AccountError(
            _("Only an incident whose scoping failed can be scoped again."), code="not_failed"
        )
    if incident.file_sha256 and file_sha256 != incident.file_sha256:
        raise AccountError(
            _(
                "This is not the file the incident was opened with (its SHA-256 differs). "
                "Open a new incident for another file."
            ),
            code="other_file",
        )
    failure = incident.error_code
    incident.state = Incident.State.QUEUED
    incident.error_code = incident.error_message = ""
    incident.finished_at = None
    incident.file_sha256 = file_sha256
    incident.save(
        update_fields=["state", "error_code", "error_message", "finished_at", "file_sha256"]
    )
    append_event(
        tag=AuditTag.INCIDENT_RESCOPE,
        actor=actor,
        details={
            "incident_id": incident.pk,
            "failed": failure,
            "source": "web" if actor else "cli",
        },
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
