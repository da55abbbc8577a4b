"""特定健診・特定保健指導の電子的な標準様式: the national standard electronic format of
specific-checkup results, one HL7 CDA document (ClinicalDocument, urn:hl7-org:v3) per
person, handed over singly or as a ZIP submission unit.

A submission unit is a folder named `<sender>_<receiver>_<date><n>_<kind>` holding the
per-person documents under DATA/, claim files under CLAIMS/, the schemas under XSD/, and
an index (交換用基本情報, ix08_V08.xml) and a summary (集計情報, su08_V08.xml) in MHLW's
namespace that state how many documents the unit holds and for which insurer.

Only who took the checkup and when is read: the card's symbol, number and branch number,
the kana name, the birth date and the day of the checkup, as the text a results sheet
would hold, and the insurer number the document names (whose results these are).

The documents come from outside. They are parsed by libxml2 (through lxml), which decodes
whatever encoding the declaration names — Windows senders declare Shift_JIS — with
entities left unexpanded, no network and no DTD loaded; a document carrying a DOCTYPE is
refused, and libxml2 itself stops entity amplification.
"""

import re
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

from lxml import etree

NS = "urn:hl7-org:v3"
# The namespace of the index and summary files. Older units used
# http://tokuteikenshin.jp/checkup/2007; both are read by their elements' local names.
MHLW_NS = "https://www.mhlw.go.jp/stf/seisakunitsuite/bunya/0000161103.html"
INSURER_NUMBER_OID = "1.2.392.200119.6.101"  # 保険者番号
CARD_SYMBOL_OID = "1.2.392.200119.6.204"  # 被保険者証等記号
CARD_NUMBER_OID = "1.2.392.200119.6.205"  # 被保険者証等番号
CARD_BRANCH_OID = "1.2.392.200119.6.211"  # 枝番
# The standard writes every insurer number with eight digits, a shorter one padded with
# leading zeros: a municipal NHI's 210013 is 00210013 there.
INSURER_NUMBER_DIGITS = 8
ZIP_MAGIC = b"PK\x03\x04"
# A per-person document is a few tens of kilobytes; anything far larger is not one.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 200_000

_Q = {"h": NS}
# The names under which Windows' Japanese code page is declared. Windows senders write
# CP932 (with its NEC and IBM extensions, e.g. ① and 髙) under the Shift_JIS label, and
# libxml2 reads that label as strict Shift_JIS; the WHATWG Encoding Standard reads all
# of these labels as Windows' code page for the same reason.
_WINDOWS_JAPANESE = frozenset(
    ("shift_jis", "shift-jis", "sjis", "x-sjis", "csshiftjis", "ms_kanji", "ms932", "windows-31j")
)
# Only the label is read here; the bytes are decoded by libxml2.
_DECLARED_ENCODING = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']"""
)


class Why(StrEnum):
    """Why one file could not be read (the application words it for people)."""

    TOO_LARGE = "too_large"
    EXTRACT = "extract"  # the archive member cannot be taken out (damaged, encrypted)
    DOCTYPE = "doctype"
    ENCODING = "encoding"  # the declared encoding is unknown; detail: its name
    BYTES = "bytes"  # bytes that are not text in the declared encoding; detail: line:column
    MALFORMED = "malformed"  # not well-formed XML; detail: line:column
    NOT_CHECKUP = "not_checkup"  # well-formed, but not a ClinicalDocument
    NO_PATIENT = "no_patient"  # no recordTarget/patientRole
    INSURER_NUMBER = "insurer_number"  # an insurer number that is not one


@dataclass(frozen=True)
class Unreadable:
    """Why a file was not read. `detail` never holds the file's own text."""

    why: Why
    detail: str = ""


class ArchiveWhy(StrEnum):
    BAD_ZIP = "bad_zip"
    NO_DOCUMENTS = "no_documents"  # no XML file under a DATA folder
    TOO_MANY = "too_many"
    INDEX_UNREADABLE = "index_unreadable"  # an index or summary file that cannot be read
    COUNT_MISMATCH = "count_mismatch"  # an index or summary counting otherwise


class UnreadableArchive(ValueError):
    """The ZIP as a whole cannot be taken as a submission; nothing of it is to be used."""

    def __init__(
        self,
        why: ArchiveWhy,
        *,
        file: str = "",
        stated: int = 0,
        found: int = 0,
        unreadable: Unreadable | None = None,
    ) -> None:
        super().__init__(why)
        self.why = why
        self.file = file
        self.stated = stated
        self.found = found
        self.unreadable = unreadable


@dataclass(frozen=True)
class CheckupRecord:
    """One person's checkup, as text in the forms a results sheet would hold."""

    insured_number: str  # 記号-番号, or the number alone
    name_kana: str
    birth_date: str  # YYYYMMDD
    day_taken: str  # YYYYMMDD
    insurer_number: str = ""  # 保険者番号 in its eight-digit form ("" when absent)
    branch: str = ""  # 枝番: the card's 記号・番号 then name a household, this its member


@dataclass(frozen=True)
class Document:
    """One document of a submission: its record, or why it could not be read."""

    name: str  # its path inside the archive ("" for a document uploaded alone)
    record: CheckupRecord | None
    unreadable: Unreadable | None = None


def insurer_number_key(text: str) -> str | None:
    """An insurer number in the standard's eight-digit form ("" for none, None for text
    that is not one): 210013 and 00210013 are one insurer."""
    digits = unicodedata.normalize("NFKC", text).strip()
    if not digits:
        return ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > INSURER_NUMBER_DIGITS:
        return None
    return digits.zfill(INSURER_NUMBER_DIGITS)


def looks_like_cda(head: bytes) -> bool:
    """Whether a file starting with `head` is XML (one document) or a ZIP that is not an
    XLSX workbook; the caller decides the latter by `is_cda_zip`."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def is_cda_zip(path: Path) -> bool:
    """A ZIP of CDA documents rather than an XLSX workbook (also a ZIP)."""
    try:
        with zipfile.ZipFile(path) as bundle:
            names = bundle.namelist()
    except zipfile.BadZipFile:
        return False
    return "xl/workbook.xml" not in names and any(n.lower().endswith(".xml") for n in names)


class Submission:
    """A results file opened for reading: one document, or a ZIP submission whose index
    and summary agree with the documents it holds (checked on opening)."""

    def __init__(self, path: Path, bundle: zipfile.ZipFile | None) -> None:
        self._path = path
        self._bundle = bundle
        self._documents: list[zipfile.ZipInfo] = []
        self.receivers: tuple[str, ...] = ()  # the insurer numbers the indexes address
        if bundle is not None:
            self._survey(bundle)

    def documents(self) -> Iterator[Document]:
        if self._bundle is None:
            with self._path.open("rb") as f:
                yield _document("", f.read(MAX_DOCUMENT_BYTES + 1))
            return
        for info in self._documents:
            data = _member(self._bundle, info)
            if isinstance(data, Unreadable):
                yield Document(info.filename, None, data)
            else:
                yield _document(info.filename, data)

    def _survey(self, bundle: zipfile.ZipFile) -> None:
        units: dict[str, dict[str, zipfile.ZipInfo]] = {}  # folder → "ix08"/"su08" → file
        documents: list[zipfile.ZipInfo] = []
        claims: list[zipfile.ZipInfo] = []
        for info in bundle.infolist():
            path = PurePosixPath(info.filename.replace("\\", "/"))
            if info.is_dir() or path.suffix.lower() != ".xml":
                continue
            folders = {part.upper() for part in path.parts[:-1]}
            if "DATA" in folders:
                documents.append(info)
            elif "CLAIMS" in folders:
                claims.append(info)
            elif "XSD" not in folders and path.name[:4].lower() in ("ix08", "su08"):
                units.setdefault(str(path.parent), {})[path.name[:4].lower()] = info
        if not documents:
            raise UnreadableArchive(ArchiveWhy.NO_DOCUMENTS)
        if len(documents) > MAX_DOCUMENTS:
            raise UnreadableArchive(ArchiveWhy.TOO_MANY, stated=MAX_DOCUMENTS, found=len(documents))
        receivers: list[str] = []
        for folder, files in units.items():
            inside = [d for d in documents if _within(d, folder)]
            claimed = [c for c in claims if _within(c, folder)]
            if "ix08" in files:
                stated, receiver = _index(bundle, files["ix08"], "index", "totalRecordCount")
                # Claim files may or may not be counted with the documents: either total agrees.
                _agree(files["ix08"], stated, len(inside), len(inside) + len(claimed))
                receivers += [receiver] if receiver else []
            if "su08" in files:
                stated, _ = _index(bundle, files["su08"], "summary", "totalSubjectCount")
                _agree(files["su08"], stated, len(inside))
        self._documents = documents
        self.receivers = tuple(receivers)


@contextmanager
def open_submission(path: Path) -> Iterator[Submission]:
    """The submission in `path`: a ZIP (by its first bytes) or one document. Raises
    `UnreadableArchive` for a ZIP that cannot be taken as a submission."""
    with path.open("rb") as f:
        is_zip = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if not is_zip:
        yield Submission(path, None)
        return
    try:
        bundle = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UnreadableArchive(ArchiveWhy.BAD_ZIP) from None
    with bundle:
        yield Submission(path, bundle)


def _agree(info: zipfile.ZipInfo, stated: int, found: int, *also: int) -> None:
    if stated not in (found, *also):
        raise UnreadableArchive(
            ArchiveWhy.COUNT_MISMATCH, file=info.filename, stated=stated, found=found
        )


def _within(info: zipfile.ZipInfo, folder: str) -> bool:
    return folder == "." or info.filename.replace("\\", "/").startswith(f"{folder}/")


def _member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | Unreadable:
    try:
        with bundle.open(info) as member:
            # file_size is only what the archive claims: read no more than the limit.
            return member.read(MAX_DOCUMENT_BYTES + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError):
        return Unreadable(Why.EXTRACT)


def _index(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, root_name: str, count_name: str
) -> tuple[int, str]:
    """The count an index or summary file states, and the insurer it is addressed to."""
    data = _member(bundle, info)
    try:
        if isinstance(data, Unreadable):
            raise _Refused(data)
        root = _parse(data)
        if etree.QName(root).localname != root_name:
            raise _Refused(Unreadable(Why.NOT_CHECKUP))
        count = root.find(f"{{*}}{count_name}")
        value = (count.get("value") or "").strip() if count is not None else ""
        if not value.isascii() or not value.isdigit():
            raise _Refused(Unreadable(Why.NOT_CHECKUP))
    except _Refused as refused:
        raise UnreadableArchive(
            ArchiveWhy.INDEX_UNREADABLE, file=info.filename, unreadable=refused.unreadable
        ) from None
    receiver = root.find("{*}receiver/{*}id")
    addressed = ""
    if receiver is not None and receiver.get("root") == INSURER_NUMBER_OID:
        addressed = (receiver.get("extension") or "").strip()
    return int(value), addressed


class _Refused(Exception):
    def __init__(self, unreadable: Unreadable) -> None:
        super().__init__(unreadable.why)
        self.unreadable = unreadable


def _document(name: str, data: bytes) -> Document:
    try:
        root = _parse(data)
        if root.tag != f"{{{NS}}}ClinicalDocument":
            raise _Refused(Unreadable(Why.NOT_CHECKUP))
        return Document(name, checkup_record(root))
    except _Refused as refused:
        return Document(name, None, refused.unreadable)


def _parse(data: bytes) -> etree._Element:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _Refused(Unreadable(Why.TOO_LARGE))
    declared = _DECLARED_ENCODING.match(data)
    label = declared.group(1).decode("ascii") if declared else ""
    parser = etree.XMLParser(
        encoding="cp932" if label.lower() in _WINDOWS_JAPANESE else None,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _Refused(_syntax_error(exc, label)) from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise _Refused(Unreadable(Why.DOCTYPE))
    return root


def _syntax_error(exc: etree.XMLSyntaxError, label: str) -> Unreadable:
    if exc.code == etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING and label:
        return Unreadable(Why.ENCODING, label)
    line, column = exc.position
    where = f"{line}:{column}"
    if exc.code == etree.ErrorTypes.ERR_INVALID_ENCODING:
        return Unreadable(Why.BYTES, where)
    return Unreadable(Why.MALFORMED, where)


def checkup_record(root: etree._Element) -> CheckupRecord:
    """Who took the checkup and when, from a parsed ClinicalDocument."""
    role = root.find("h:recordTarget/h:patientRole", _Q)
    if role is None:
        raise _Refused(Unreadable(Why.NO_PATIENT))
    ids = {i.get("root"): (i.get("extension") or "").strip() for i in role.findall("h:id", _Q)}
    insurer = insurer_number_key(ids.get(INSURER_NUMBER_OID, ""))
    if insurer is None:
        raise _Refused(Unreadable(Why.INSURER_NUMBER))
    symbol, number = ids.get(CARD_SYMBOL_OID, ""), ids.get(CARD_NUMBER_OID, "")
    insured = f"{symbol}-{number}" if symbol and number else number
    patient = role.find("h:patient", _Q)
    kana = born = ""
    if patient is not None:
        kana = _kana_name(patient.findall("h:name", _Q))
        born = _day_value(patient.find("h:birthTime", _Q))
    event = root.find("h:documentationOf/h:serviceEvent/h:effectiveTime", _Q)
    day = _day_value(event) or _day_value(root.find("h:effectiveTime", _Q))
    return CheckupRecord(
        insured_number=insured,
        name_kana=kana,
        birth_date=born,
        day_taken=day,
        insurer_number=insurer,
        branch=ids.get(CARD_BRANCH_OID, ""),
    )


def _kana_name(names: list[etree._Element]) -> str:
    """The kana name (use="SYL"), else the only or first name: the standard's documents
    name the person once, in kana, often without family and given parts."""
    name = next((n for n in names if n.get("use") == "SYL"), names[0] if names else None)
    if name is None:
        return ""
    return " ".join(t.strip() for t in name.itertext() if t.strip())


def _day_value(element: etree._Element | None) -> str:
    """The YYYYMMDD of a TS value (which may carry a time), or of an interval's start."""
    if element is None:
        return ""
    value = element.get("value") or ""
    if not value:
        low = element.find("h:low", _Q)
        value = (low.get("value") or "") if low is not None else ""
    return value.strip()[:8]
