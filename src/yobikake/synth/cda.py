"""Synthetic checkup results in the national standard electronic format (特定健診・特定保健
指導の電子的な標準様式): a ZIP submission unit of one HL7 CDA document per person, beside
index and summary files, as an insurer's checkup contractor would hand it over. Enough
of the standard to exercise `jp.checkup_cda` (namespaces, the card ids under their OIDs,
kanji and kana names, birthTime, the checkup's effectiveTime); no test results.
"""

import random
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

from yobikake.intake.reading import map_headers, open_sheet
from yobikake.intake.validation import RowChecker
from yobikake.jp.checkup_cda import CARD_NUMBER_OID, CARD_SYMBOL_OID, INSURER_NUMBER_OID, NS
from yobikake.synth.people import Person
from yobikake.tenancy.fiscal import FiscalYear

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
# 特定健診情報ファイル: the document type of a specific-checkup result.
_DOCUMENT_CODE = "10"
_DOCUMENT_CODE_SYSTEM = "1.2.392.200119.6.1001"
_SEX_CODE_SYSTEM = "1.2.392.200119.6.1104"
SYNTHETIC_INSURER_NUMBER = "06219999"  # 06 (組合) with an unassigned tail

ET.register_namespace("", NS)
ET.register_namespace("xsi", _XSI)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def cda_document(
    person: Person, day: date, *, insurer_number: str = SYNTHETIC_INSURER_NUMBER
) -> bytes:
    """One person's specific-checkup result document, taken on `day`."""
    root = ET.Element(f"{{{NS}}}ClinicalDocument")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _el(root, "id", root="1.2.392.200119.6.990.2", extension=f"{insurer_number}{day:%Y%m%d}")
    _el(root, "code", code=_DOCUMENT_CODE, codeSystem=_DOCUMENT_CODE_SYSTEM)
    _el(root, "effectiveTime", value=f"{day:%Y%m%d}")
    _el(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=INSURER_NUMBER_OID, extension=insurer_number)
    symbol, _, number = person.insured_number.rpartition("-")
    if symbol:
        _el(role, "id", root=CARD_SYMBOL_OID, extension=symbol)
    _el(role, "id", root=CARD_NUMBER_OID, extension=number)
    patient = _el(role, "patient")
    for use, full in (("IDE", person.name_kanji), ("SYL", person.name_kana)):
        name = _el(patient, "name", use=use)
        family, _, given = full.partition(" ")
        _el(name, "family", family)
        if given:
            _el(name, "given", given)
    _el(patient, "administrativeGenderCode", code=person.sex, codeSystem=_SEX_CODE_SYSTEM)
    if person.birth_date is not None:
        _el(patient, "birthTime", value=f"{person.birth_date:%Y%m%d}")
    event = _el(_el(root, "documentationOf"), "serviceEvent", classCode="PCPR")
    _el(event, "effectiveTime", value=f"{day:%Y%m%d}")
    _el(root, "component")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_cda_zip(
    taken: Iterable[tuple[Person, date]],
    out: Path,
    *,
    insurer_number: str = SYNTHETIC_INSURER_NUMBER,
) -> int:
    """Write a submission unit of one document per (person, day taken) to `out`; how
    many documents it holds."""
    count = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for n, (person, day) in enumerate(taken, start=1):
            document = cda_document(person, day, insurer_number=insurer_number)
            bundle.writestr(f"DATA/h{insurer_number}{n:07d}.xml", document)
            count = n
        index = ET.Element(f"{{{NS}}}index")
        _el(index, "numberOfFiles", value=str(count))
        bundle.writestr("index.xml", ET.tostring(index, encoding="utf-8", xml_declaration=True))
        summary = ET.Element(f"{{{NS}}}summary")
        _el(summary, "totalRecordCount", value=str(count))
        bundle.writestr("summary.xml", ET.tostring(summary, encoding="utf-8", xml_declaration=True))
    return count


def people_of_list(path: Path, fiscal_year: int) -> list[Person]:
    """The valid rows of a list file as `synth lists` writes it (or any list file intake
    reads), checked as intake checks them; invalid rows left out."""
    sheet = open_sheet(path)
    checker = RowChecker(map_headers(sheet.headers), fiscal_year)
    return [
        person
        for person in (checker.check(number, cells)[0] for number, cells in sheet.rows)
        if person is not None
    ]


def results_sample(
    people: Sequence[Person], *, fiscal_year: int, share: float, seed: int
) -> list[tuple[Person, date]]:
    """A seeded `share` of `people` as having taken the checkup on a day of `fiscal_year`
    (1 April – 31 March), in the order they came."""
    if not 0 < share <= 1:
        raise ValueError("The share must be more than 0 and at most 1.")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by seed
    year = FiscalYear(fiscal_year)
    days = (year.ends - year.starts).days
    return [
        (person, year.starts + timedelta(days=rng.randrange(days + 1)))
        for person in people
        if rng.random() < share
    ]
