"""特定健診・特定保健指導の電子的な標準様式: the national standard electronic format of
specific-checkup results, one HL7 CDA document (ClinicalDocument, urn:hl7-org:v3) per
person, handed over singly or as a ZIP submission unit (index and summary files beside a
folder of per-person documents).

Only who took the checkup and when is read: the card's symbol and number, the kana
name, the birth date and the day of the checkup, as the text a results sheet would hold,
and the insurer number the document names (whose results these are).
The documents come from outside, so a DOCTYPE (and with it every entity declaration, the
road to entity expansion) is refused before ElementTree sees the bytes.
"""

import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

NS = "urn:hl7-org:v3"
INSURER_NUMBER_OID = "1.2.392.200119.6.101"  # 保険者番号
CARD_SYMBOL_OID = "1.2.392.200119.6.204"  # 被保険者証記号
CARD_NUMBER_OID = "1.2.392.200119.6.205"  # 被保険者証番号
ZIP_MAGIC = b"PK\x03\x04"
# A per-person document is a few tens of kilobytes; anything far larger is not one.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_DOCUMENTS = 200_000

_Q = {"h": NS}


class NotCheckupDocument(ValueError):
    """The bytes are not a well-formed, DOCTYPE-free CDA checkup document."""


@dataclass(frozen=True)
class CheckupRecord:
    """One person's checkup, as text in the forms a results sheet would hold."""

    insured_number: str  # 記号-番号, or the number alone
    name_kana: str
    birth_date: str  # YYYYMMDD
    day_taken: str  # YYYYMMDD
    insurer_number: str = ""  # 保険者番号, as the document states it (may be absent)


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


def read_documents(path: Path) -> Iterator[CheckupRecord | None]:
    """Each checkup document in the file (one XML document or a ZIP of them), None for
    one that cannot be read. Other well-formed XML in a ZIP (index, summary) is skipped."""
    with path.open("rb") as f:
        is_zip = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    if not is_zip:
        with path.open("rb") as f:
            yield _record(f.read(MAX_DOCUMENT_BYTES + 1), alone=True)
        return
    with zipfile.ZipFile(path) as bundle:
        members = [i for i in bundle.infolist() if i.filename.lower().endswith(".xml")]
        for info in members[:MAX_DOCUMENTS]:
            try:
                with bundle.open(info) as member:
                    # file_size is only what the archive claims: read no more than the limit.
                    data = member.read(MAX_DOCUMENT_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                yield None
                continue
            record = _record(data, alone=False)
            if record is not _NOT_A_CHECKUP:
                yield record


_NOT_A_CHECKUP = CheckupRecord("", "", "", "")  # a well-formed index or summary file


def _record(data: bytes, *, alone: bool) -> CheckupRecord | None:
    try:
        root = _parse(data)
        if root.tag != f"{{{NS}}}ClinicalDocument":
            return None if alone else _NOT_A_CHECKUP
        return checkup_record(root)
    except NotCheckupDocument:
        return None


def _refuse(*_args: object) -> None:
    raise NotCheckupDocument("doctype")


def _parse(data: bytes) -> ET.Element:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise NotCheckupDocument("size")
    # A first pass with expat itself, which lets us refuse a DOCTYPE before any entity
    # is declared, let alone expanded; ElementTree's C parser offers no such hook.
    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = _refuse
    guard.EntityDeclHandler = _refuse
    try:
        guard.Parse(data, True)
        return ET.fromstring(data)  # noqa: S314 - DOCTYPE refused above
    except (expat.ExpatError, ET.ParseError, ValueError) as exc:
        raise NotCheckupDocument(str(exc)) from None


def checkup_record(root: ET.Element) -> CheckupRecord:
    """Who took the checkup and when, from a parsed ClinicalDocument."""
    role = root.find("h:recordTarget/h:patientRole", _Q)
    if role is None:
        raise NotCheckupDocument("no patientRole")
    ids = {i.get("root"): (i.get("extension") or "").strip() for i in role.findall("h:id", _Q)}
    symbol, number = ids.get(CARD_SYMBOL_OID, ""), ids.get(CARD_NUMBER_OID, "")
    insured = f"{symbol}-{number}" if symbol and number else number
    patient = role.find("h:patient", _Q)
    kana = born = ""
    if patient is not None:
        names = patient.findall("h:name", _Q)
        name = next((n for n in names if n.get("use") == "SYL"), names[0] if names else None)
        if name is not None:
            kana = " ".join(t.strip() for t in name.itertext() if t.strip())
        birth = patient.find("h:birthTime", _Q)
        born = _day_value(birth)
    event = root.find("h:documentationOf/h:serviceEvent/h:effectiveTime", _Q)
    day = _day_value(event) or _day_value(root.find("h:effectiveTime", _Q))
    return CheckupRecord(
        insured_number=insured,
        name_kana=kana,
        birth_date=born,
        day_taken=day,
        insurer_number=ids.get(INSURER_NUMBER_OID, ""),
    )


def _day_value(element: ET.Element | None) -> str:
    """The YYYYMMDD of a TS value (which may carry a time), or of an interval's start."""
    if element is None:
        return ""
    value = element.get("value") or ""
    if not value:
        low = element.find("h:low", _Q)
        value = low.get("value", "") if low is not None else ""
    return value.strip()[:8]
