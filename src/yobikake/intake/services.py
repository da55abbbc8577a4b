"""Writing target lists: `start_import` + `run_import` for the files insurers send (the
command line, the web upload's background task and the API all use them), and
`load_target_list` for synthetic people (tests, the demo, benchmarks)."""

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.alerts import raise_alert
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import append_event, audited, record_denial
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import Campaign
from yobikake.exports.retention import request_list_deletion
from yobikake.intake import leases
from yobikake.intake.models import (
    ColumnMapping,
    ImportFinding,
    ListImport,
    TargetList,
)
from yobikake.intake.reading import FIELD_LABELS, UnreadableFile, map_headers, open_sheet
from yobikake.intake.sealing import ROWS_PER_LIST
from yobikake.intake.validation import Finding, RowChecker
from yobikake.intake.writer import BATCH, ListWriter, Prepared, Writer
from yobikake.synth.people import Person
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Contract, Insurer


@audited(AuditTag.LIST_LOAD)
def load_target_list(
    *, actor: User, insurer: Insurer, fiscal_year: int, people: Sequence[Person]
) -> TargetList:
    """Store `people` as the insurer's list for `fiscal_year`: every personal field
    sealed under the list's new data key, blind indexes under the insurer's index key,
    in one transaction (all rows or none)."""
    require(actor, Permission.LIST_OWN_IMPORT)
    if actor.organization.insurer_id != insurer.pk:
        raise NotPermitted(_("You may send lists only for your own insurer."), code="not_yours")
    if not people:
        raise AccountError(_("The list has no one on it."), code="empty")
    if any(p.sex not in ("1", "2") for p in people):
        raise AccountError(_("Sex is coded 1 (male) or 2 (female)."), code="bad_sex")
    target_list = TargetList.objects.create(
        insurer=insurer,
        fiscal_year=fiscal_year,
        created_by=actor,
        rows_submitted=len(people),
    )
    writer = ListWriter(target_list)
    writer.expect(len(people))
    writer.store_all(list(enumerate(people, 1)))
    writer.finish()
    append_event(
        tag=AuditTag.LIST_LOAD,
        actor=actor,
        insurer_id=insurer.pk,
        list_id=target_list.pk,
        details={"rows": len(people), "fiscal_year": fiscal_year, "canaries": len(writer.canaries)},
    )
    return target_list


MAX_FINDINGS_KEPT = 10_000
REQUIRED_COLUMNS = ("name_kanji", "name_kana", "sex", "address")
Progress = Callable[[int], None]


class _Rejected(Exception):
    """Raised inside the import's transaction to undo it; the report survives."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message


@dataclass
class _Outcome:
    submitted: int = 0
    accepted: int = 0
    findings: list[Finding] = field(default_factory=list)
    findings_count: int = 0
    target_list: TargetList | None = None
    canaries: int = 0
    superseded: list[TargetList] = field(default_factory=list)  # replaced by this list

    def add(self, finding: Finding) -> None:
        self.findings_count += 1
        if len(self.findings) < MAX_FINDINGS_KEPT:
            self.findings.append(finding)

    @property
    def excluded_rows(self) -> int:
        return self.submitted - self.accepted


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_may_import(actor: User | None, insurer: Insurer, fiscal_year: int) -> None:
    """Insurer staff send their own insurer's lists; the command line (actor None) any.
    A list needs a contract for its fiscal year."""
    if actor is not None:
        require(actor, Permission.LIST_OWN_IMPORT)
        if actor.organization.insurer_id != insurer.pk:
            raise NotPermitted(_("You may send lists only for your own insurer."), code="not_yours")
    if not insurer.contracts.filter(fiscal_year=fiscal_year).exists():
        raise AccountError(
            _("There is no contract with this insurer for fiscal year %(y)s.") % {"y": fiscal_year},
            code="no_contract",
        )


# The refusals that ask the sender to choose what becomes of the earlier list.
EARLIER_LIST_REFUSALS = ("list_exists", "list_in_campaign")


def _earlier_lists(insurer_id: int, fiscal_year: int) -> QuerySet[TargetList]:
    """The insurer's lists of the year in use: not shredded, not replaced."""
    return TargetList.objects.filter(
        insurer_id=insurer_id,
        fiscal_year=fiscal_year,
        state=TargetList.State.ACTIVE,
        superseded_by__isnull=True,
    )


def _refuse_without_choice(fiscal_year: int) -> AccountError:
    return AccountError(
        _(
            "A list for %(year)s has already been sent. Choose whether this file is added "
            "to it as a supplementary list, or replaces it."
        )
        % {"year": FiscalYear(fiscal_year)},
        code="list_exists",
    )


def _refuse_replacing(earlier: QuerySet[TargetList]) -> AccountError | None:
    """A list that a running campaign is calling is not replaced: the campaign would
    lose its people part-way when the list is shredded."""
    campaign = Campaign.objects.filter(lists__in=earlier, state=Campaign.State.RUNNING).first()
    if campaign is None:
        return None
    return AccountError(
        _(
            "The earlier list is being called in the running campaign “%(name)s” and "
            "cannot be replaced. Send this file as a supplementary list, or replace the "
            "list once the campaign is closed."
        )
        % {"name": campaign.name},
        code="list_in_campaign",
    )


def check_earlier_lists(insurer: Insurer, fiscal_year: int, existing: str) -> None:
    """A second list for the same insurer and year is taken only with the sender's
    choice: added to the earlier (a supplementary list) or replacing it. A list still
    waiting to be imported counts as sent."""
    earlier = _earlier_lists(insurer.pk, fiscal_year)
    pending = ListImport.objects.filter(
        insurer=insurer,
        fiscal_year=fiscal_year,
        state__in=(ListImport.State.QUEUED, ListImport.State.RUNNING),
    )
    if not existing and (earlier.exists() or pending.exists()):
        raise _refuse_without_choice(fiscal_year)
    if existing == ListImport.Existing.REPLACE and (refusal := _refuse_replacing(earlier)):
        raise refusal


def start_import(
    *,
    actor: User | None,
    insurer: Insurer,
    fiscal_year: int,
    file_name: str,
    file_sha256: str,
    policy: str,
    existing: str = "",
) -> ListImport:
    """Record a file sent in (queued), after checking the sender may send it and, when
    the insurer has a list of the year already, what the sender chose to do with it
    (`existing`: "add" or "replace"; see `check_earlier_lists`)."""
    existing = ListImport.Existing(existing) if existing else ""
    try:
        check_may_import(actor, insurer, fiscal_year)
        check_earlier_lists(insurer, fiscal_year, existing)
    except AccountError as exc:
        record_denial(tag=AuditTag.LIST_IMPORT, actor=actor, reason=exc.code, insurer_id=insurer.pk)
        raise
    return ListImport.objects.create(
        insurer=insurer,
        fiscal_year=fiscal_year,
        policy=ListImport.Policy(policy),
        existing=existing,
        file_name=Path(file_name).name[:255],
        file_sha256=file_sha256,
        created_by=actor,
    )


def run_import(
    list_import: ListImport,
    path: Path,
    progress: Progress | None = None,
    *,
    writer_class: type[Writer] = ListWriter,
) -> ListImport:
    """Read, check and store the file as the insurer's list: all of it, the valid rows
    (policy `exclude`), or nothing (policy `reject`, or a file that cannot be read). One
    transaction holds the list, its outcome, findings and audit event: a crash or a kill
    leaves no part of a list, and no list without its record. A refused or failed
    import is recorded after the rollback; one whose process is killed is marked failed
    by the next task worker to start (`fail_interrupted_imports`)."""
    with importing(list_import):
        outcome = _Outcome()
        try:
            with transaction.atomic():
                _import_rows(list_import, path, outcome, progress, writer_class)
                _finish(list_import, outcome, ListImport.State.ACCEPTED, "")
                _supersede(list_import, outcome)
                return list_import
        except _Rejected as exc:
            error = exc.code
            list_import.error_message = exc.message
        except UnreadableFile as exc:
            error = exc.code
            list_import.error_message = str(exc)
        except Exception as exc:
            # Nothing of the list survives the rollback; the import says it failed (never
            # left "importing"), on the record, and the error goes on to the log.
            outcome.target_list, outcome.accepted, outcome.findings = None, 0, []
            list_import.error_message = str(_("The import failed; nothing was stored."))
            code = type(exc).__name__.lower()[:40]
            _finish(list_import, outcome, ListImport.State.FAILED, code)
            raise
        outcome.target_list, outcome.accepted = None, 0
        _finish(list_import, outcome, ListImport.State.REJECTED, error)
        return list_import


IMPORT_JOB = "intake:import"


@contextmanager
def importing(list_import: ListImport) -> Iterator[None]:
    """The import marked running, for the block, by a process that holds its lease
    (intake/leases.py): the lease dies with the process, however it dies."""
    with leases.holding(IMPORT_JOB, list_import.pk):
        ListImport.objects.filter(pk=list_import.pk).update(state=ListImport.State.RUNNING)
        yield


def fail_interrupted_imports() -> list[ListImport]:
    """Mark failed each import recorded as running whose process is gone (killed, or its
    host restarted): it stored nothing (its transaction died with it), and without this
    it would read "importing" for ever. Each gets its audit event and an alert. The
    task worker calls this as it starts."""
    failed = []
    running = ListImport.objects.filter(state=ListImport.State.RUNNING)
    for pk in running.values_list("pk", flat=True):
        with leases.if_abandoned(IMPORT_JOB, pk) as abandoned, transaction.atomic():
            list_import = running.select_for_update().filter(pk=pk).first() if abandoned else None
            if list_import is None:
                continue
            list_import.error_message = str(
                _("The import was interrupted (its process ended); nothing was stored.")
            )
            event = _finish(list_import, _Outcome(), ListImport.State.FAILED, "interrupted")
            raise_alert(
                "import_interrupted",
                Alert.Severity.WARNING,
                event,
                f"list import #{pk} (insurer #{list_import.insurer_id}, "
                f"FY{list_import.fiscal_year}) was left running by a process that ended; "
                "marked failed, nothing stored",
            )
            failed.append(list_import)
    return failed


def _import_rows(
    list_import: ListImport,
    path: Path,
    outcome: _Outcome,
    progress: Progress | None,
    writer_class: type[Writer],
) -> None:
    sheet = open_sheet(path)
    list_import.file_kind, list_import.encoding = sheet.kind, sheet.encoding
    saved = dict(
        ColumnMapping.objects.filter(insurer=list_import.insurer).values_list("header", "field")
    )
    mapping = map_headers(sheet.headers, saved)
    missing = [f for f in REQUIRED_COLUMNS if f not in mapping]
    if "birth_date" not in mapping and "age" not in mapping:
        missing.append("birth_date")
    if missing:
        labels = "、".join(str(FIELD_LABELS[f]) for f in missing)
        raise UnreadableFile(
            "columns",
            str(_("Columns missing: %(c)s.") % {"c": labels}),
        )
    target_list = TargetList.objects.create(
        insurer=list_import.insurer,
        fiscal_year=list_import.fiscal_year,
        created_by=list_import.created_by,
        source_sha256=list_import.file_sha256,
    )
    outcome.superseded = _take_the_year(list_import, target_list)
    writer = writer_class(target_list)
    writer.expect(sheet.rows_estimate)
    try:
        _check_and_write(
            RowChecker(mapping, list_import.fiscal_year),
            sheet.rows,
            writer,
            outcome,
            progress,
            reject=list_import.policy == ListImport.Policy.REJECT,
        )
    except BaseException:
        writer.abandon()
        raise
    writer.finish(rows_submitted=outcome.submitted)
    outcome.canaries = len(writer.canaries)
    outcome.target_list = target_list


def _take_the_year(list_import: ListImport, target_list: TargetList) -> list[TargetList]:
    """Inside the import's transaction: the insurer's year, taken in turn by its imports
    (the contract's row is locked to the end), checked against the sender's choice
    again (a list may have arrived, or a campaign started, since it was queued). With
    "replace", the lists in use are superseded by `target_list` at once, so that its
    people are not found on them; undone with the transaction if the import fails."""
    insurer, year = list_import.insurer, list_import.fiscal_year
    Contract.objects.select_for_update(no_key=True).filter(
        insurer=insurer, fiscal_year=year
    ).first()
    earlier = _earlier_lists(insurer.pk, year).exclude(pk=target_list.pk)
    try:
        if not list_import.existing and earlier.exists():
            raise _refuse_without_choice(year)
        if list_import.existing != ListImport.Existing.REPLACE:
            return []
        if refusal := _refuse_replacing(earlier):
            raise refusal
    except AccountError as exc:
        raise _Rejected(exc.code, str(exc)) from None
    superseded = list(earlier.select_for_update().order_by("pk"))
    earlier.update(superseded_by=target_list)
    return superseded


def _supersede(list_import: ListImport, outcome: _Outcome) -> None:
    """Record each list the accepted one replaced, and ask for its early deletion on the
    sender's behalf (the security officer approves it, and the list is shredded and
    certified: exports/retention.py). From the command line no person sent it, and the
    insurer's staff ask for it themselves."""
    for earlier in outcome.superseded:
        approval_id = None
        if list_import.created_by is not None:
            # Already asked for, or not the sender's to ask: the refusal is recorded.
            with contextlib.suppress(AccountError):
                approval = request_list_deletion(actor=list_import.created_by, target_list=earlier)
                approval_id = approval.pk
        append_event(
            tag=AuditTag.LIST_SUPERSEDE,
            actor=list_import.created_by,
            insurer_id=earlier.insurer_id,
            list_id=earlier.pk,
            details={
                "by_list": outcome.target_list.pk,
                "import_id": list_import.pk,
                "approval_id": approval_id,
            },
        )


def _check_and_write(
    checker: RowChecker,
    rows: Iterable[tuple[int, list[str]]],
    writer: Writer,
    outcome: _Outcome,
    progress: Progress | None,
    *,
    reject: bool,
) -> None:
    """Check each row and hand the valid ones to the writer; of what comes back
    prepared, store the rows that repeat no one (none once a file under the policy
    `reject` has a finding: then they are only counted)."""
    seen: dict[object, int] = {}

    def take(batches: Iterable[list[Prepared]]) -> None:
        for batch in batches:
            fresh = []
            for prepared in batch:
                first = seen.setdefault(prepared.identity, prepared.row)
                if first == prepared.row:
                    fresh.append(prepared)
                else:
                    outcome.add(Finding(prepared.row, "", "duplicate_in_file", ref_row=first))
            on_file = writer.on_other_lists([p.identity for p in fresh])
            kept = []
            for prepared in fresh:
                if prepared.identity in on_file:
                    outcome.add(Finding(prepared.row, "", "duplicate_in_year"))
                else:
                    outcome.accepted += 1
                    kept.append(prepared)
            if kept and not (reject and outcome.findings_count):
                writer.store(kept)

    valid: list[tuple[int, Person]] = []
    for row, cells in rows:
        if row >= ROWS_PER_LIST:
            raise UnreadableFile("too_many_rows", str(_("The file has too many rows.")))
        outcome.submitted += 1
        person, findings = checker.check(row, cells)
        for finding in findings:
            outcome.add(finding)
        if progress and outcome.submitted % 1000 == 0:
            progress(outcome.submitted)
        if person is None:
            continue
        valid.append((row, person))
        if len(valid) >= BATCH:
            writer.submit(valid)
            valid = []
            take(writer.prepared())
    if valid:
        writer.submit(valid)
    take(writer.prepared(everything=True))
    if progress:
        progress(outcome.submitted)
    if outcome.submitted == 0:
        raise UnreadableFile("no_rows", str(_("The file has a header but no rows.")))
    if reject and outcome.findings_count:
        raise _Rejected("findings")
    if outcome.accepted == 0:
        raise _Rejected("no_valid_rows")


def _finish(list_import: ListImport, outcome: _Outcome, state: str, error: str) -> Event:
    with transaction.atomic():
        list_import.state = state
        list_import.error_code = error
        list_import.rows_submitted = outcome.submitted
        list_import.rows_accepted = outcome.accepted if state == ListImport.State.ACCEPTED else 0
        list_import.rows_excluded = outcome.submitted - list_import.rows_accepted
        list_import.findings_count = outcome.findings_count
        list_import.target_list = outcome.target_list
        list_import.finished_at = timezone.now()
        list_import.save()
        ImportFinding.objects.bulk_create(
            [
                ImportFinding(
                    list_import=list_import,
                    row=f.row,
                    field=f.field,
                    cell=f.cell,
                    code=f.code,
                    ref_row=f.ref_row,
                )
                for f in outcome.findings
            ],
            batch_size=1000,
        )
        return append_event(
            tag=AuditTag.LIST_IMPORT,
            actor=list_import.created_by,
            denied="" if state == ListImport.State.ACCEPTED else (error or "rejected"),
            insurer_id=list_import.insurer_id,
            list_id=outcome.target_list.pk if outcome.target_list else None,
            details={
                "import_id": list_import.pk,
                "fiscal_year": list_import.fiscal_year,
                "policy": list_import.policy,
                "rows_submitted": list_import.rows_submitted,
                "rows_accepted": list_import.rows_accepted,
                "findings": list_import.findings_count,
                # How many canaries the list holds (never which): a set later deleted
                # from the database is noticed (incidents/canaries.py).
                "canaries": outcome.canaries if state == ListImport.State.ACCEPTED else 0,
                "source": "web" if list_import.created_by_id else "cli",
                "existing": list_import.existing,
                "superseded": len(outcome.superseded) if state == ListImport.State.ACCEPTED else 0,
            },
        )


def save_column_mapping(*, insurer: Insurer, header: str, field: str) -> ColumnMapping:
    """Read the insurer's column `header` as Yobikake's `field` in every later file."""
    if field not in FIELD_LABELS:
        raise AccountError(_("No such field: %(f)s.") % {"f": field}, code="field")
    mapping, _created = ColumnMapping.objects.update_or_create(
        insurer=insurer, header=header.strip(), defaults={"field": field}
    )
    return mapping
