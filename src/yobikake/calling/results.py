"""Checkup results handed back by an insurer: who took the checkup, and when.

The file (CSV/TSV in any encoding intake reads, XLSX, or the national standard electronic
format: one CDA document or a ZIP of them, see `jp.checkup_cda`) names each person by
insured number, or by kana name and birth date, beside the day taken. Each row is matched by
blind index under the insurer's own key against the call targets of the insurer's
running and closed campaigns; only the match result is stored (`CallTarget.attended_on`,
when the day falls in that campaign's fiscal year). The file itself is never stored,
and the audit event carries counts only.
"""

import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Campaign
from yobikake.intake.reading import UnreadableFile, header_key, map_headers, open_sheet
from yobikake.jp import checkup_cda
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


@dataclass(frozen=True)
class ResultsSummary:
    rows: int
    matched: int  # a person of a campaign, on a day in its fiscal year
    outside_year: int  # a person of a campaign, on a day outside its fiscal year
    unmatched: int  # no one of the insurer's campaigns
    invalid: int  # no usable insured number or kana + birth date, or no usable day


@dataclass(frozen=True)
class _Row:
    keys: dict[IndexKind, bytes]
    day: date


def _cell(row: list[str], column: int | None) -> str:
    return row[column] if column is not None and column < len(row) else ""


def _read(path: Path, indexer: Indexer, insurer_number: str) -> tuple[list[_Row], int]:
    """The usable rows of the file, and how many were not."""
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
            row = _row(cells, columns, day_column, indexer)
            if row is None:
                invalid += 1
            else:
                rows.append(row)
    except UnreadableFile as exc:
        raise AccountError(str(exc), code=exc.code) from None
    return rows, invalid


# The row shape a CDA document is turned into, so that both roads share `_row`.
_CDA_COLUMNS = {"insured_number": 0, "name_kana": 1, "birth_date": 2}
_CDA_DAY_COLUMN = 3


def _read_cda(path: Path, indexer: Indexer, insurer_number: str) -> tuple[list[_Row], int]:
    """A document naming another insurer refuses the whole file: those are another
    insurer's residents (sent to the wrong place), and nothing of it is recorded."""
    rows: list[_Row] = []
    invalid = 0
    try:
        for record in checkup_cda.read_documents(path):
            stated = "".join(c for c in record.insurer_number if c.isdigit()) if record else ""
            if stated and stated != insurer_number:
                raise AccountError(
                    _(
                        "This file holds checkup results of another insurer (insurer number "
                        "%(number)s); nothing was recorded."
                    )
                    % {"number": stated},
                    code="other_insurer",
                )
            row = (
                None
                if record is None
                else _row(
                    [record.insured_number, record.name_kana, record.birth_date, record.day_taken],
                    _CDA_COLUMNS,
                    _CDA_DAY_COLUMN,
                    indexer,
                )
            )
            if row is None:
                invalid += 1
            else:
                rows.append(row)
    except zipfile.BadZipFile:
        raise AccountError(_("The ZIP file cannot be read."), code="format") from None
    return rows, invalid


def _row(
    cells: list[str], columns: dict[str, int], day_column: int, indexer: Indexer
) -> _Row | None:
    try:
        day = parse_date(_cell(cells, day_column))
    except InvalidDate:
        return None
    try:
        insured = parse_insured_number(_cell(cells, columns.get("insured_number")))
    except InvalidInsuredNumber:
        insured = ""
    try:
        born: date | None = parse_date(_cell(cells, columns.get("birth_date")))
    except InvalidDate:
        born = None
    fields = IndexedFields(
        name_kanji="",
        name_kana=_cell(cells, columns.get("name_kana")),
        birth_date=born,
        phone="",
        address="",
        insured_number=insured,
    )
    parts = {kind: p for kind, p in fields.parts().items() if kind in _COLUMNS}
    if not parts:
        return None
    return _Row(dict(indexer.values(parts)), day)


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
        # The insured number names the person when it matches; kana + birth date only
        # when it does not (a union could mark two different people for one row).
        people: set[tuple[int, int]] = set()
        for kind in (IndexKind.INSURED_NUMBER, IndexKind.KANA_BIRTH):
            if not people and kind in row.keys:
                people = set(candidates.get(row.keys[kind], ()))
        if not people:
            unmatched += 1
            continue
        in_year = [pk for pk, year in people if FiscalYear.of(row.day).year == year]
        if not in_year:
            outside += 1
        for pk in in_year:
            attended[pk] = min(row.day, attended.get(pk, row.day))
    return attended, outside, unmatched


@audited(AuditTag.CHECKUP_RESULTS_IMPORT)
def record_checkup_results(*, actor: Any, insurer: Any, path: Path) -> ResultsSummary:
    """Match the insurer's checkup results file to its campaigns' call targets and store
    the day each matched person took the checkup. For the insurer's own staff only."""
    require(actor, Permission.LIST_OWN_IMPORT)
    if actor.organization.insurer_id != insurer.pk:
        raise NotPermitted(_("Results can only be uploaded for your own insurer."), "not_yours")
    rows, invalid = _read(path, Indexer(datakeys.index_key(insurer.pk)), insurer.number)
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
