"""Tables as downloadable files (the pages and `yobikake report` share these)."""

import csv
import io


def csv_text(table: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(table)
    return buffer.getvalue()


def xlsx_bytes(table: list[list[object]], sheet_name: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    for row in table:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
