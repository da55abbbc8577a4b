"""Checkup results handed back by an insurer: who took the checkup, and when.

The file (CSV/TSV in any encoding intake reads, XLSX, or the national standard electronic
format: one CDA document or a ZIP submission of them, see `jp.checkup_cda`) names each
person by insured number, or by kana name and birth date, beside the day taken. Each row
is matched by blind index under the insurer's own key against the call targets of the
insurer's running and closed campaigns; only the match result is stored
(`CallTarget.attended_on`, when the day falls in that campaign's fiscal year). The file
itself is never stored, and the audit event carries counts only; why a document could
not be read goes back to the sender alone.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Campaign
from yobikake.intake.reading import UnreadableFile, header_key, map_headers, open_sheet
from yobikake.jp import checkup_cda
from yobikake.jp.checkup_cda import ArchiveWhy, UnreadableArchive, Why
from yobikake.jp.dates import InvalidDate, parse_date
from yobikake.jp.insured_numbers import InvalidInsuredNumber, parse_insured_number
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.records import IndexedFields

# Headers of the day taken, as insurers' systems name it (compared like intake's).
DATE_HEADERS = frozenset(
    header_key(h)
    for h in ("受診日", "健診受診日", "受診年月日", "健診日", "実施日", "健診実施日", "attended_on")
)
_COLUMNS = {IndexKind.INSURED_NUMBER: "idx_insured_number", IndexKind.KANA_BIRTH: "idx_kana_birth"}
_BATCH = 1000
# The documents named on the page and the command line as unreadable; the count says the rest.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class ResultsSummary:
    rows: int
    matched: int  # a person of a campaign, on a day in its fiscal year
    outside_year: int  # a person of a campaign, on a day outside its fiscal year
    unmatched: int  # no one of the insurer's campaigns
    invalid: int  # no usable insured number or kana + birth date, or no usable day
    problems: tuple[str, ...] = ()  # each document not read, and why (for the sender only)


@dataclass(frozen=True)
class _Row:
    keys: dict[IndexKind, bytes]
    day: date
    household: bool = False  # the insured number names a household (the card has an 枝番)


class _Unusable(StrEnum):
    NO_DAY = "no_day"
    NO_PERSON = "no_person"


# Why a document was not used, in words for its sender (never the document's content).
_REASONS = {
    Why.TOO_LARGE: gettext_lazy(
        "It is larger than %(mb)s MB, more than a checkup document can be."
    ),
    Why.EXTRACT: gettext_lazy("It cannot be taken out of the ZIP file (damaged or encrypted)."),
    Why.DOCTYPE: gettext_lazy(
        "It carries a DOCTYPE declaration, which checkup documents do not have."
    ),
    Why.ENCODING: gettext_lazy("The declared encoding “%(encoding)s” cannot be read."),
    Why.BYTES: gettext_lazy(
        "It holds bytes that are not text in its declared encoding (line %(line)s, "
        "column %(column)s)."
    ),
    Why.MALFORMED: gettext_lazy("It is not well-formed XML (line %(line)s, column %(column)s)."),
    Why.NOT_CHECKUP: gettext_lazy("It is not a checkup document (ClinicalDocument)."),
    Why.NO_PATIENT: gettext_lazy("It names no examinee (recordTarget/patientRole)."),
    Why.INSURER_NUMBER: gettext_lazy("Its insurer number is not one."),
    _Unusable.NO_DAY: gettext_lazy("It gives no day the checkup was taken."),
    _Unusable.NO_PERSON: gettext_lazy(
        "It gives neither the card's number nor the kana name and date of birth."
    ),
}


def _cell(row: list[str], column: int | None) -> str:
    return row[column] if column is not None and column < len(row) else ""


def _read(path: Path, indexer: Indexer, insurer_number: str) -> tuple[list[_Row], int, list[str]]:
    """The usable rows of the file, how many were not, and why (for documents)."""
    with path.open("rb") as f:
        head = f.read(len(checkup_cda.ZIP_MAGIC))
    if checkup_cda.looks_like_cda(head) or (
        head == checkup_cda.ZIP_MAGIC and checkup_cda.is_cda_zip(path)
    ):
        return _read_cda(path, indexer, insurer_number)
    try:
        sheet = open_sheet(path)
        columns = map_headers(sheet.headers)
    except UnreadableFile as exc:
        raise AccountError(str(exc), code=exc.code) from None
    day_column = next(
        (i for i, h in enumerate(sheet.headers) if header_key(h) in DATE_HEADERS), None
    )
    identifies = "insured_number" in columns or {"name_kana", "birth_date"} <= columns.keys()
    if day_column is None or not identifies:
        raise AccountError(
            _(
                "The file needs a column with the day the checkup was taken (受診日) and "
                "either the insured number or the kana name and date of birth."
            ),
            code="columns",
        )
    rows: list[_Row] = []
    invalid = 0
    try:
        for _number, cells in sheet.rows:
            row = _keyed(
                day=_cell(cells, day_column),
                insured_number=_cell(cells, columns.get("insured_number")),
                name_kana=_cell(cells, columns.get("name_kana")),
                birth_date=_cell(cells, columns.get("birth_date")),
                indexer=indexer,
            )
            if isinstance(row, _Unusable):
                invalid += 1
            else:
                rows.append(row)
    except UnreadableFile as exc:
        raise AccountError(str(exc), code=exc.code) from None
    return rows, invalid, []


def _read_cda(
    path: Path, indexer: Indexer, insurer_number: str
) -> tuple[list[_Row], int, list[str]]:
    """A document or an index naming another insurer refuses the whole file: those are
    another insurer's residents (sent to the wrong place), and nothing of it is recorded."""
    own = checkup_cda.insurer_number_key(insurer_number)
    rows: list[_Row] = []
    problems: list[str] = []
    try:
        with checkup_cda.open_submission(path) as submission:
            for receiver in submission.receivers:
                if checkup_cda.insurer_number_key(receiver) != own:
                    raise _other_insurer(receiver)
            for document in submission.documents():
                row = _document_row(document, own, indexer)
                if isinstance(row, _Row):
                    rows.append(row)
                else:
                    problems.append(f"{document.name}: {row}" if document.name else row)
    except UnreadableArchive as exc:
        raise _refused_archive(exc) from None
    return rows, len(problems), problems


def _document_row(document: checkup_cda.Document, own: str | None, indexer: Indexer) -> _Row | str:
    """The document's row, or why it has none in words for its sender."""
    record = document.record
    if record is None:
        unreadable = document.unreadable or checkup_cda.Unreadable(Why.MALFORMED)
        return _reason(unreadable.why, unreadable.detail)
    if record.insurer_number not in ("", own):
        raise _other_insurer(record.insurer_number)
    row = _keyed(
        day=record.day_taken,
        insured_number=record.insured_number,
        name_kana=record.name_kana,
        birth_date=record.birth_date,
        indexer=indexer,
        household=bool(record.branch),
    )
    return row if isinstance(row, _Row) else _reason(row)


def _other_insurer(number: str) -> AccountError:
    return AccountError(
        _(
            "This file holds checkup results of another insurer (insurer number "
            "%(number)s); nothing was recorded."
        )
        % {"number": number},
        code="other_insurer",
    )


def _refused_archive(exc: UnreadableArchive) -> AccountError:
    if exc.why == ArchiveWhy.COUNT_MISMATCH:
        message = _(
            "%(file)s counts %(stated)s checkup documents, but the DATA folder holds "
            "%(found)s; nothing was recorded."
        ) % {"file": exc.file, "stated": exc.stated, "found": exc.found}
        return AccountError(message, code="archive_counts")
    if exc.why == ArchiveWhy.INDEX_UNREADABLE:
        unreadable = exc.unreadable or checkup_cda.Unreadable(Why.MALFORMED)
        why = _reason(unreadable.why, unreadable.detail)
        message = _("%(file)s cannot be read: %(why)s Nothing was recorded.") % {
            "file": exc.file,
            "why": why,
        }
        return AccountError(message, code="archive_index")
    if exc.why == ArchiveWhy.NO_DOCUMENTS:
        return AccountError(
            _("The ZIP file holds no checkup documents in a DATA folder; nothing was recorded."),
            code="archive_empty",
        )
    if exc.why == ArchiveWhy.TOO_MANY:
        return AccountError(
            _("The ZIP file holds more than %(limit)s documents; send it in parts.")
            % {"limit": f"{exc.stated:,}"},
            code="archive_too_large",
        )
    return AccountError(_("The ZIP file cannot be read."), code="format")


def _reason(why: Why | _Unusable, detail: str = "") -> str:
    line, _sep, column = detail.partition(":")
    return str(_REASONS[why]) % {
        "mb": checkup_cda.MAX_DOCUMENT_BYTES // (1024 * 1024),
        "encoding": detail,
        "line": line,
        "column": column,
    }


def _keyed(
    *,
    day: str,
    insured_number: str,
    name_kana: str,
    birth_date: str,
    indexer: Indexer,
    household: bool = False,
) -> _Row | _Unusable:
    """One row's index values under the insurer's key and its day, or why it has none."""
    try:
        taken = parse_date(day)
    except InvalidDate:
        return _Unusable.NO_DAY
    try:
        insured = parse_insured_number(insured_number)
    except InvalidInsuredNumber:
        insured = ""
    try:
        born: date | None = parse_date(birth_date)
    except InvalidDate:
        born = None
    fields = IndexedFields(
        name_kanji="",
        name_kana=name_kana,
        birth_date=born,
        phone="",
        address="",
        insured_number=insured,
    )
    parts = {kind: p for kind, p in fields.parts().items() if kind in _COLUMNS}
    if not parts:
        return _Unusable.NO_PERSON
    return _Row(dict(indexer.values(parts)), taken, household)


def _candidates(insurer_id: int, rows: list[_Row]) -> dict[bytes, list[tuple[int, int]]]:
    """Index value → (call target id, campaign fiscal year) in the insurer's running and
    closed campaigns."""
    found: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    targets = CallTarget.objects.filter(
        insurer_id=insurer_id,
        campaign__state__in=[Campaign.State.RUNNING, Campaign.State.CLOSED],
    )
    for kind, column in _COLUMNS.items():
        values = list({r.keys[kind] for r in rows if kind in r.keys})
        for start in range(0, len(values), _BATCH):
            batch = values[start : start + _BATCH]
            for pk, value, year in targets.filter(**{f"target__{column}__in": batch}).values_list(
                "pk", f"target__{column}", "campaign__fiscal_year"
            ):
                found[bytes(value)].append((pk, year))
    return found


def _match(
    rows: Iterable[_Row], candidates: dict[bytes, list[tuple[int, int]]]
) -> tuple[dict[int, date], int, int]:
    """Call target → day taken; rows matched outside every campaign's year; unmatched."""
    attended: dict[int, date] = {}
    outside = unmatched = 0
    for row in rows:
        people = _people(row, candidates)
        if not people:
            unmatched += 1
            continue
        in_year = [pk for pk, year in people if FiscalYear.of(row.day).year == year]
        if not in_year:
            outside += 1
        for pk in in_year:
            attended[pk] = min(row.day, attended.get(pk, row.day))
    return attended, outside, unmatched


def _people(row: _Row, candidates: dict[bytes, list[tuple[int, int]]]) -> set[tuple[int, int]]:
    """The call targets one row names. The insured number names the person when it
    matches; kana + birth date only when it does not (a union could mark two different
    people for one row). A card with an 枝番 is a household's: its 記号・番号 match every
    member on the lists, which hold no 枝番, so the member is the one whose kana name and
    birth date agree, and no one when none does (another member took the checkup)."""
    by_number = set(candidates.get(row.keys.get(IndexKind.INSURED_NUMBER, b""), ()))
    by_kana = set(candidates.get(row.keys.get(IndexKind.KANA_BIRTH, b""), ()))
    if row.household and by_number and IndexKind.KANA_BIRTH in row.keys:
        return by_number & by_kana
    return by_number or by_kana


@audited(AuditTag.CHECKUP_RESULTS_IMPORT)
def record_checkup_results(*, actor: Any, insurer: Any, path: Path) -> ResultsSummary:
    """Match the insurer's checkup results file to its campaigns' call targets and store
    the day each matched person took the checkup. For the insurer's own staff only;
    `actor` None is the command line (`yobikake results import`)."""
    if actor is not None:
        require(actor, Permission.LIST_OWN_IMPORT)
        if actor.organization.insurer_id != insurer.pk:
            raise NotPermitted(_("Results can only be uploaded for your own insurer."), "not_yours")
    rows, invalid, problems = _read(path, Indexer(datakeys.index_key(insurer.pk)), insurer.number)
    attended, outside, unmatched = _match(rows, _candidates(insurer.pk, rows))
    by_day: dict[date, list[int]] = defaultdict(list)
    for pk, day in attended.items():
        by_day[day].append(pk)
    for day, pks in by_day.items():
        for start in range(0, len(pks), _BATCH):
            CallTarget.objects.filter(pk__in=pks[start : start + _BATCH]).update(attended_on=day)
    summary = ResultsSummary(
        rows=len(rows) + invalid,
        matched=len(rows) - outside - unmatched,
        outside_year=outside,
        unmatched=unmatched,
        invalid=invalid,
        problems=_named(problems),
    )
    append_event(
        tag=AuditTag.CHECKUP_RESULTS_IMPORT,
        actor=actor,
        insurer_id=insurer.pk,
        details={
            "rows": summary.rows,
            "matched": summary.matched,
            "outside_year": summary.outside_year,
            "unmatched": summary.unmatched,
            "invalid": summary.invalid,
            "call_targets": len(attended),
        },
    )
    return summary


def _named(problems: list[str]) -> tuple[str, ...]:
    if len(problems) <= MAX_PROBLEMS:
        return tuple(problems)
    more = _("…and %(count)s more documents that could not be read.") % {
        "count": f"{len(problems) - MAX_PROBLEMS:,}"
    }
    return (*problems[:MAX_PROBLEMS], more)
