"""Reading the files municipal systems export: CSV or TSV in CP932 (Shift_JIS), UTF-8 or
UTF-8 with a BOM, or Excel (XLSX), each with its own headers. Rows are streamed: memory
does not grow with the file (XLSX sheets are held compactly by calamine, in Rust).

Nothing here looks at the values beyond decoding them; `validation` does that.
"""

import codecs
import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from django.utils.translation import gettext_lazy as _

SNIFF_BYTES = 64 * 1024
XLSX_MAGIC = b"PK\x03\x04"
MAX_COLUMNS = 200


class UnreadableFile(Exception):
    """The file as a whole cannot be read; `code` goes to the report and the audit log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Every header a municipal file has been seen with, for each field Yobikake stores.
# Headers are compared after NFKC, without spaces, brackets or middle dots.
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "name_kanji": ("氏名", "漢字氏名", "被保険者氏名", "氏名漢字", "名前", "対象者氏名", "name"),
    "name_kana": (
        "カナ氏名",
        "フリガナ",
        "ふりがな",
        "氏名カナ",
        "カナ",
        "氏名フリガナ",
        "被保険者氏名カナ",
        "kana",
    ),
    "sex": ("性別", "性", "性別コード", "sex"),
    "birth_date": ("生年月日", "誕生日", "生年月日和暦", "birthdate", "birth_date"),
    "age": ("年齢", "年度末年齢", "age"),
    "address": ("住所", "現住所", "住所1", "所在地", "address"),
    "postal_code": ("郵便番号", "〒", "postalcode", "postal_code", "zip"),
    "phone": ("電話番号", "連絡先電話番号", "電話", "連絡先", "tel", "phone"),
    "insured_number": (
        "被保険者番号",
        "記号番号",
        "被保険者証記号番号",
        "保険証番号",
        "記号・番号",
        "insured_number",
    ),
}
FIELD_LABELS = {
    "name_kanji": _("Name (kanji)"),
    "name_kana": _("Name (kana)"),
    "sex": _("Sex"),
    "birth_date": _("Date of birth"),
    "age": _("Age"),
    "address": _("Address"),
    "postal_code": _("Postal code"),
    "phone": _("Phone"),
    "insured_number": _("Insured number"),
}
_HEADER_NOISE = re.compile(r"[\s()（）「」\[\]【】・:：]")


def header_key(text: str) -> str:
    return _HEADER_NOISE.sub("", unicodedata.normalize("NFKC", text)).lower()


_SYNONYM_INDEX = {header_key(s): field for field, names in HEADER_SYNONYMS.items() for s in names}


def map_headers(headers: list[str], saved: Mapping[str, str] | None = None) -> dict[str, int]:
    """Field → column index. `saved` is the insurer's own mapping (header key → field),
    which wins over the synonyms. A field named twice is refused: which one is meant?"""
    index = {**_SYNONYM_INDEX, **{header_key(h): f for h, f in (saved or {}).items()}}
    mapping: dict[str, int] = {}
    for column, header in enumerate(headers):
        field = index.get(header_key(header))
        if field is None:
            continue
        if field in mapping:
            raise UnreadableFile(
                "duplicate_column",
                str(_("Two columns are both “%(f)s”.") % {"f": FIELD_LABELS[field]}),
            )
        mapping[field] = column
    return mapping


def detect_encoding(head: bytes) -> str:
    """UTF-8 (with or without a BOM) when the bytes decode as such, else CP932."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    for encoding in ("utf-8", "cp932"):
        try:
            # A multibyte character may be cut at the end of the sample: decode it as the
            # start of a stream, unless the sample is the whole file.
            codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < SNIFF_BYTES)
        except UnicodeDecodeError:
            continue
        return encoding
    raise UnreadableFile(
        "encoding", str(_("The file is neither UTF-8 nor Shift_JIS (CP932) text."))
    )


@dataclass(frozen=True)
class Sheet:
    """A file opened for reading: its headers, and its data rows (numbered from 2, as a
    spreadsheet shows them, the header being row 1)."""

    kind: str  # "csv", "tsv", "xlsx"
    encoding: str
    headers: list[str]
    rows: Iterator[tuple[int, list[str]]]
    # About how many data rows there are (canaries are spread over them), 0 if unknown.
    rows_estimate: int = 0


def open_sheet(path: Path) -> Sheet:
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise UnreadableFile("empty", str(_("The file is empty.")))
    if head.startswith(XLSX_MAGIC):
        return _open_xlsx(path)
    if b"\x00" in head:
        raise UnreadableFile("binary", str(_("This is not a CSV or Excel file.")))
    encoding = detect_encoding(head)
    first_line = head.decode(encoding, errors="ignore").splitlines()[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    sheet = _open_csv(path, encoding, delimiter)
    lines = head.count(b"\n") or 1
    estimate = round(path.stat().st_size * lines / len(head)) - 1
    return replace(sheet, rows_estimate=max(estimate, 0))


def _open_csv(path: Path, encoding: str, delimiter: str) -> Sheet:
    text = io.TextIOWrapper(path.open("rb"), encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        headers = next(reader)
    except (StopIteration, UnicodeDecodeError, csv.Error) as exc:
        text.close()
        raise UnreadableFile("format", str(_("The header row cannot be read."))) from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, row in enumerate(reader, 2):
                if any(cell.strip() for cell in row):
                    yield number, row
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                "encoding", str(_("The file changes its character encoding part-way."))
            ) from exc
        except csv.Error as exc:
            raise UnreadableFile("format", str(_("The CSV is malformed."))) from exc
        finally:
            text.close()

    return Sheet("tsv" if delimiter == "\t" else "csv", encoding, headers[:MAX_COLUMNS], rows())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 1 as 1.0
    if hasattr(value, "isoformat"):
        return str(value.isoformat())[:10]
    return str(value)


MAX_ROWS = 1_000_000
MAX_XLSX_UNPACKED = 2 * 1024**3
_CELL_REF = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _check_xlsx_extent(path: Path) -> None:
    """Refuse a workbook whose first sheet reaches beyond any list's size before calamine
    lays out its grid (a few kilobytes naming cells A1 and XFD1048576 would make it ask
    for hundreds of gigabytes)."""
    try:
        with zipfile.ZipFile(path) as book:
            if sum(info.file_size for info in book.infolist()) > MAX_XLSX_UNPACKED:
                raise UnreadableFile("too_large", str(_("The Excel file is too large unpacked.")))
            sheets = sorted(n for n in book.namelist() if n.startswith("xl/worksheets/sheet"))
            if not sheets:
                raise UnreadableFile("format", str(_("The Excel file cannot be read.")))
            tail = b""
            with book.open(sheets[0]) as xml:
                while chunk := xml.read(1 << 20):
                    for letters, digits in _CELL_REF.findall(tail + chunk):
                        if _column_number(letters) > MAX_COLUMNS or int(digits) > MAX_ROWS:
                            raise UnreadableFile(
                                "too_large", str(_("The sheet reaches beyond any list's size."))
                            )
                    tail = chunk[-32:]
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        raise UnreadableFile("format", str(_("The Excel file cannot be read."))) from exc


def _open_xlsx(path: Path) -> Sheet:
    from python_calamine import CalamineWorkbook

    _check_xlsx_extent(path)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0)
        rows_iter = iter(sheet.iter_rows())
        headers = [_cell(v) for v in next(rows_iter)]
    except StopIteration:
        raise UnreadableFile("empty", str(_("The file is empty."))) from None
    except Exception as exc:  # calamine raises its own errors for broken workbooks
        raise UnreadableFile("format", str(_("The Excel file cannot be read."))) from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, row in enumerate(rows_iter, 2):
            cells = [_cell(v) for v in row]
            if any(c.strip() for c in cells):
                yield number, cells

    height = int(getattr(sheet, "height", 0) or 0)
    return Sheet("xlsx", "xlsx", headers[:MAX_COLUMNS], rows(), max(height - 1, 0))
