"""Reading the file of the federation's member insurers: CSV or TSV in UTF-8 (with or
without a BOM) or Shift_JIS (CP932), or XLSX — read as list files are (intake/reading.py)
— with the columns 保険者番号 and 名称, and optionally 種別 (市町村 or 国保組合)."""

from pathlib import Path

from django.utils.translation import gettext as _

from yobikake.intake.reading import UnreadableFile, header_key, open_sheet
from yobikake.tenancy.services import InsurerRow, TenancyError

HEADERS = {
    "number": ("保険者番号", "insurer_number", "number"),
    "name": ("名称", "保険者名", "保険者名称", "name"),
    "kind": ("種別", "保険者種別", "kind"),
}
_FIELDS = {header_key(h): f for f, headers in HEADERS.items() for h in headers}


def read_insurer_file(path: Path) -> list[InsurerRow]:
    """The file's rows, or `TenancyError` when it cannot be read as such a file."""
    try:
        sheet = open_sheet(path)
        columns: dict[str, int] = {}
        for column, header in enumerate(sheet.headers):
            field = _FIELDS.get(header_key(header))
            if field is not None:
                columns.setdefault(field, column)
        if "number" not in columns or "name" not in columns:
            raise TenancyError(
                _("The file needs the columns 保険者番号 and 名称 (and may have 種別).")
            )
        width = len(sheet.headers)

        def cell(cells: list[str], field: str) -> str:
            column = columns.get(field)
            return cells[column] if column is not None and column < len(cells) else ""

        rows = [
            InsurerRow(
                line=line,
                number=cell(cells, "number"),
                name=cell(cells, "name"),
                kind=cell(cells, "kind"),
                extra=any(c.strip() for c in cells[width:]),
            )
            for line, cells in sheet.rows
        ]
    except UnreadableFile as exc:
        raise TenancyError(str(exc), code=exc.code) from None
    if not rows:
        raise TenancyError(_("The file lists no insurer."), code="empty")
    return rows
