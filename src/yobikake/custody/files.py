"""Export files made in custody: the insurer's results file and the notification list
are filled, written and encrypted to the insurer's age key by the custodian, so that
the application relays ciphertext and never holds its people's values.

The application sends a template (`protocol.FileRequest`): a header and lines whose
cells are either its own text or a `SealedCell`, a field of one of the request's rows
written by a formatter named here. The formatters are the jp/ functions the application
writes its own (watermark) rows with, so both kinds of rows come out in the same forms.
`refusal` checks the template before anything is opened; `write` fills it with the
values the custodian opened and returns the age ciphertext.
"""

import csv
import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import pyrage  # type: ignore[import-untyped]

from yobikake.custody.policy import is_id
from yobikake.custody.protocol import FileRequest, Refusal, SealedCell
from yobikake.jp.dates import age_on, slash_date
from yobikake.jp.wareki import wareki_date


@dataclass(frozen=True)
class Format:
    """How a value is written: `write(value, arg)`, for the fields in `fields` (None:
    any), `arg` checked by `takes`."""

    write: Callable[[str, str], str]
    fields: frozenset[str] | None = None
    takes: Callable[[str], bool] = lambda arg: arg == ""


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


_DATES = frozenset({"birth_date"})
FORMATS: dict[str, Format] = {
    "text": Format(lambda value, _arg: value),
    "wareki": Format(lambda value, _arg: wareki_date(date.fromisoformat(value)), _DATES),
    "slash_date": Format(lambda value, _arg: slash_date(date.fromisoformat(value)), _DATES),
    # The age on the day `arg` (ISO), from the birth date.
    "age_on": Format(
        lambda value, arg: str(age_on(date.fromisoformat(value), date.fromisoformat(arg))),
        _DATES,
        _is_iso_date,
    ),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.csv")


class CannotWrite(Exception):
    """An opened value its formatter cannot write (a birth date that is not a date)."""


def _is_cell(cell: object, rows: frozenset[int], fields: frozenset[str]) -> bool:
    if isinstance(cell, str):
        return True
    if not isinstance(cell, SealedCell):
        return False
    form = FORMATS.get(cell.format) if isinstance(cell.format, str) else None
    return (
        form is not None
        and is_id(cell.row_id)
        and cell.row_id in rows
        and isinstance(cell.field, str)
        and cell.field in fields
        and (form.fields is None or cell.field in form.fields)
        and isinstance(cell.arg, str)
        and form.takes(cell.arg)
        and isinstance(cell.empty, str)
    )


def is_recipient(text: str) -> bool:
    """An age X25519 public key (age1…)."""
    try:
        pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError:
        return False
    return True


def refusal(request: FileRequest) -> Refusal | None:
    """Why a file's template is refused before anything is opened (None: it may go on):
    a name that is not a plain CSV file name, lines not as long as the header, a cell
    naming a row or field the request does not open or a formatter that does not write
    that field, sort columns outside the line, a recipient that is not an age X25519
    public key. The bulk rules (policy.bulk_refusal) are checked besides."""
    r = request
    if not (
        isinstance(r.name, str)
        and _NAME.fullmatch(r.name)
        and isinstance(r.header, tuple)
        and all(isinstance(h, str) for h in r.header)
        and isinstance(r.lines, list)
        and isinstance(r.sort_by, tuple)
        and all(isinstance(c, int) and 0 <= c < len(r.header) for c in r.sort_by)
        and isinstance(r.recipient, str)
    ):
        return Refusal.BAD_REQUEST
    if not is_recipient(r.recipient):
        return Refusal.BAD_REQUEST
    rows = frozenset(row.row_id for row in r.bulk.rows)
    fields = frozenset(r.bulk.fields)
    width = len(r.header)
    for line in r.lines:
        if not (isinstance(line, list) and len(line) == width):
            return Refusal.BAD_REQUEST
        if not all(_is_cell(cell, rows, fields) for cell in line):
            return Refusal.BAD_REQUEST
    return None


def _fill(cell: str | SealedCell, values: Mapping[int, Mapping[str, str]]) -> str:
    if isinstance(cell, str):
        return cell
    value = values[cell.row_id][cell.field]
    if value == "":
        return cell.empty
    try:
        return FORMATS[cell.format].write(value, cell.arg)
    except ValueError:
        raise CannotWrite(
            f"row {cell.row_id}: {cell.field} cannot be written as {cell.format}"
        ) from None


@dataclass(frozen=True)
class Written:
    data: bytes  # the age ciphertext
    lines: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def write(request: FileRequest, values: Mapping[int, Mapping[str, str]]) -> Written:
    """The file filled with the opened `values` (row id -> field -> value), sorted,
    written as CSV (UTF-8 with a BOM, for Excel) and encrypted to the recipient."""
    lines = [[_fill(cell, values) for cell in line] for line in request.lines]
    if request.sort_by:
        lines.sort(key=lambda line: [line[c] for c in request.sort_by])
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(request.header)
    writer.writerows(lines)
    recipient = pyrage.x25519.Recipient.from_str(request.recipient)
    return Written(pyrage.encrypt(out.getvalue().encode("utf-8"), [recipient]), len(lines))
