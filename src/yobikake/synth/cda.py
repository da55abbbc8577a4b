"""Synthetic checkup results in the national standard electronic format (特定健診・特定保健
指導の電子的な標準様式), as real senders hand them over: a ZIP submission unit
`<sender>_<insurer>_<date>0_1/` with one HL7 CDA document per person under DATA/, a claim
file each under CLAIMS/, schema files under XSD/, and the index (ix08_V08.xml) and
summary (su08_V08.xml) in MHLW's namespace. Insurer numbers are written with eight digits
as the standard asks (00210013 for 210013), card symbols and numbers in full-width
characters, and each document in one of the forms senders use: with or without the
card's symbol, with or without an 枝番, one unstructured kana name or names in parts,
UTF-8 or Shift_JIS. Enough of the standard to exercise `jp.checkup_cda`; no test results.
"""

import random
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path

import jaconv

from yobikake.intake.reading import map_headers, open_sheet
from yobikake.intake.validation import RowChecker
from yobikake.jp.checkup_cda import (
    CARD_BRANCH_OID,
    CARD_NUMBER_OID,
    CARD_SYMBOL_OID,
    INSURER_NUMBER_DIGITS,
    INSURER_NUMBER_OID,
    MHLW_NS,
    NS,
)
from yobikake.synth.people import Person
from yobikake.tenancy.fiscal import FiscalYear

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XS = "http://www.w3.org/2001/XMLSchema"
# 特定健診情報ファイル: the document type of a specific-checkup result.
_DOCUMENT_CODE = "10"
_DOCUMENT_CODE_SYSTEM = "1.2.392.200119.6.1001"
_PROGRAM_CODE_SYSTEM = "1.2.392.200119.6.1002"
_SEX_CODE_SYSTEM = "1.2.392.200119.6.1104"
_INSTITUTION_OID = "1.2.392.200119.6.102"  # 特定健診機関番号
_INTERACTION = "6"  # from a checkup institution to an insurer
_SERVICE_EVENT = "1"  # 特定健診
SYNTHETIC_INSURER_NUMBER = "06219999"  # 06 (組合) with an unassigned tail
SYNTHETIC_SENDER = "9900000001"  # a checkup institution number: 99 is no prefecture


class NameForm(StrEnum):
    SINGLE_WIDE = "single_wide"  # one <name>, family and given kana parted by a full-width space
    SINGLE_NARROW = "single_narrow"  # the same, parted by a half-width space
    PARTS = "parts"  # a kanji (IDE) and a kana (SYL) name, each with family and given


@dataclass(frozen=True)
class Form:
    """How one sender's system writes a document."""

    name: NameForm = NameForm.SINGLE_WIDE
    symbol: bool = True  # writes 被保険者証等記号 (some leave it out)
    branch: bool = False  # writes an 枝番
    shift_jis: bool = False  # declares Shift_JIS over Windows' CP932 bytes


# The forms real senders use; an archive's documents are dealt to them in turn, so that
# every archive holds each of them.
FORMS = (
    Form(NameForm.SINGLE_WIDE, symbol=False, branch=True, shift_jis=True),
    Form(NameForm.SINGLE_NARROW, symbol=True, branch=False),
    Form(NameForm.PARTS, symbol=True, branch=True),
)

ET.register_namespace("", NS)
ET.register_namespace("xsi", _XSI)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    element.text = text
    return element


def padded(insurer_number: str) -> str:
    """The insurer number as the standard writes it: eight digits, zeros in front."""
    return insurer_number.zfill(INSURER_NUMBER_DIGITS)


def cda_document(
    person: Person,
    day: date,
    *,
    insurer_number: str = SYNTHETIC_INSURER_NUMBER,
    form: Form = Form(),
    created: date | None = None,
    institution: str = SYNTHETIC_SENDER,
) -> bytes:
    """One person's specific-checkup result document, taken on `day`, written on
    `created` (the day after it when not given)."""
    written = created or day + timedelta(days=1)
    root = ET.Element(
        f"{{{NS}}}ClinicalDocument", {f"{{{_XSI}}}schemaLocation": f"{NS} ../XSD/hc08_V08.xsd"}
    )
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _el(root, "id", nullFlavor="NI")
    _el(root, "code", code=_DOCUMENT_CODE, codeSystem=_DOCUMENT_CODE_SYSTEM)
    _el(root, "effectiveTime", value=f"{written:%Y%m%d}")
    _el(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25")
    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=INSURER_NUMBER_OID, extension=padded(insurer_number))
    symbol, _, number = person.insured_number.rpartition("-")
    if symbol and form.symbol:
        _el(role, "id", root=CARD_SYMBOL_OID, extension=_full_width(symbol))
    _el(role, "id", root=CARD_NUMBER_OID, extension=_full_width(number))
    if form.branch:
        _el(role, "id", root=CARD_BRANCH_OID, extension="01")
    patient = _el(role, "patient")
    _names(patient, person, form.name)
    _el(patient, "administrativeGenderCode", code=person.sex, codeSystem=_SEX_CODE_SYSTEM)
    if person.birth_date is not None:
        _el(patient, "birthTime", value=f"{person.birth_date:%Y%m%d}")
    author = _el(root, "author")
    _el(author, "time", value=f"{written:%Y%m%d}")
    assigned = _el(author, "assignedAuthor")
    _el(assigned, "id", nullFlavor="NI")
    _el(
        _el(assigned, "representedOrganization"), "id", root=_INSTITUTION_OID, extension=institution
    )
    event = _el(_el(root, "documentationOf"), "serviceEvent", classCode="PCPR")
    _el(event, "code", code="010", codeSystem=_PROGRAM_CODE_SYSTEM)
    _el(event, "effectiveTime", value=f"{day:%Y%m%d}")
    _el(_el(root, "component"), "structuredBody")
    return _xml(root, shift_jis=form.shift_jis)


def _full_width(text: str) -> str:
    # The standard asks for card symbols and numbers in full-width characters.
    return str(jaconv.h2z(text, kana=False, ascii=True, digit=True))


def _names(patient: ET.Element, person: Person, form: NameForm) -> None:
    if form == NameForm.PARTS:
        for use, full in (("IDE", person.name_kanji), ("SYL", person.name_kana)):
            name = _el(patient, "name", use=use)
            family, _, given = full.partition(" ")
            _el(name, "family", family)
            if given:
                _el(name, "given", given)
        return
    space = "\u3000" if form == NameForm.SINGLE_WIDE else " "
    _el(patient, "name", space.join(person.name_kana.split()))


def _xml(root: ET.Element, *, shift_jis: bool = False) -> bytes:
    body = ET.tostring(root, encoding="unicode")
    if shift_jis:
        declaration = '<?xml version="1.0" encoding="Shift_JIS"?>\n'
        return (declaration + body).encode("cp932", "xmlcharrefreplace")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def _mhlw(tag: str, schema: str, children: Iterable[tuple[str, dict[str, str]]]) -> bytes:
    root = ET.Element(
        f"{{{MHLW_NS}}}{tag}", {f"{{{_XSI}}}schemaLocation": f"{MHLW_NS} ./XSD/{schema}"}
    )
    for path, attrs in children:
        parent = root
        *outer, leaf = path.split("/")
        for step in outer:
            parent = ET.SubElement(parent, f"{{{MHLW_NS}}}{step}")
        ET.SubElement(parent, f"{{{MHLW_NS}}}{leaf}", attrs)
    return _xml(root)


def _claim(insurer_number: str) -> bytes:
    """A 決済情報ファイル stand-in: the insurer, no amounts (Yobikake reads no claims)."""
    return _mhlw(
        "checkupClaim",
        "cc08_V08.xsd",
        [("insurerNumber", {"root": INSURER_NUMBER_OID, "extension": insurer_number})],
    )


def write_cda_zip(
    taken: Iterable[tuple[Person, date]],
    out: Path,
    *,
    insurer_number: str = SYNTHETIC_INSURER_NUMBER,
    sender: str = SYNTHETIC_SENDER,
    forms: Sequence[Form] = FORMS,
) -> int:
    """Write a submission unit of one document per (person, day taken) to `out`, made
    the day after the last checkup; how many documents it holds."""
    taken = list(taken)
    if not taken:
        raise ValueError("No one took the checkup: there is nothing to write.")
    created = max(day for _, day in taken) + timedelta(days=1)
    receiver = padded(insurer_number)
    stem = f"{sender}{created:%Y%m%d}0"
    unit = f"{sender}_{receiver}_{created:%Y%m%d}0_1"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for n, (person, day) in enumerate(taken, start=1):
            form = forms[(n - 1) % len(forms)]
            document = cda_document(
                person, day, insurer_number=insurer_number, form=form, created=created
            )
            bundle.writestr(f"{unit}/DATA/h{stem}1{n:06d}.xml", document)
            bundle.writestr(f"{unit}/CLAIMS/c{stem}1{n:06d}.xml", _claim(receiver))
        bundle.writestr(
            f"{unit}/ix08_V08.xml",
            _mhlw(
                "index",
                "ix08_V08.xsd",
                [
                    ("interactionType", {"code": _INTERACTION}),
                    ("creationTime", {"value": f"{created:%Y%m%d}"}),
                    ("sender/id", {"root": _INSTITUTION_OID, "extension": sender}),
                    ("receiver/id", {"root": INSURER_NUMBER_OID, "extension": receiver}),
                    ("serviceEventType", {"code": _SERVICE_EVENT}),
                    ("totalRecordCount", {"value": str(len(taken))}),
                ],
            ),
        )
        bundle.writestr(
            f"{unit}/su08_V08.xml",
            _mhlw(
                "summary",
                "su08_V08.xsd",
                [
                    ("serviceEventType", {"code": _SERVICE_EVENT}),
                    ("totalSubjectCount", {"value": str(len(taken))}),
                    ("totalCostAmount", {"value": "0", "currency": "JPY"}),
                    ("totalPaymentAmount", {"value": "0", "currency": "JPY"}),
                    ("totalClaimAmount", {"value": "0", "currency": "JPY"}),
                ],
            ),
        )
        for schema in ("hc08_V08.xsd", "cc08_V08.xsd", "ix08_V08.xsd", "su08_V08.xsd"):
            bundle.writestr(f"{unit}/XSD/{schema}", _placeholder_schema(schema))
    return len(taken)


def _placeholder_schema(name: str) -> bytes:
    """Where a real unit carries MHLW's schema files: a stand-in that says so."""
    root = ET.Element(f"{{{_XS}}}schema")
    root.append(ET.Comment(f" synthetic stand-in for {name}; Yobikake does not read XSD/ "))
    return _xml(root)


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
