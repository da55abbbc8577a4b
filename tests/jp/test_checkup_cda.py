"""Reading checkup results in the national standard format as senders really write them:
the documents here are written by hand after the standard (not by Yobikake's own writer,
which once agreed with the reader and with nothing else)."""

import zipfile

import pytest

from yobikake.jp import checkup_cda
from yobikake.jp.checkup_cda import ArchiveWhy, UnreadableArchive, Why

MHLW = "https://www.mhlw.go.jp/stf/seisakunitsuite/bunya/0000161103.html"
UNIT = "9900000001_00219014_202301200_1/"


def real_document(
    *,
    insurer="00219014",
    ids='<id extension="１２３４５６" root="1.2.392.200119.6.205"/>'
    '<id extension="01" root="1.2.392.200119.6.211"/>',
    name="<name>ヤマダ　ハナコ</name>",
    born="19600415",
    day="20221102",
    encoding="Shift_JIS",
    doctype="",
) -> bytes:
    """A 特定健診情報ファイル as a checkup institution's system writes it: the insurer
    number padded to eight digits, no 記号, one unstructured kana name, an 枝番, and a
    Shift_JIS declaration over Windows' CP932 bytes."""
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>{doctype}'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="urn:hl7-org:v3 ../XSD/hc08_V08.xsd">'
        '<typeId extension="POCD_HD000040" root="2.16.840.1.113883.1.3"/>'
        '<id nullFlavor="NI"/><code code="10" codeSystem="1.2.392.200119.6.1001"/>'
        '<effectiveTime value="20230120"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
        f'<recordTarget><patientRole><id extension="{insurer}" root="1.2.392.200119.6.101"/>'
        f"{ids}<patient>{name}"
        '<administrativeGenderCode code="2" codeSystem="1.2.392.200119.6.1104"/>'
        f'<birthTime value="{born}"/></patient></patientRole></recordTarget>'
        '<author><time value="20230120"/><assignedAuthor><id nullFlavor="NI"/>'
        "<representedOrganization>"
        '<id extension="9900000001" root="1.2.392.200119.6.102"/>'
        "<name>髙﨑クリニック①</name></representedOrganization></assignedAuthor></author>"
        '<documentationOf><serviceEvent classCode="PCPR">'
        '<code code="010" codeSystem="1.2.392.200119.6.1002"/>'
        f'<effectiveTime value="{day}"/></serviceEvent></documentationOf>'
        "<component><structuredBody/></component></ClinicalDocument>"
    )
    return text.encode("utf-8" if encoding == "UTF-8" else "cp932")


def index(count, receiver="00219014", namespace=MHLW) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><index xmlns="{namespace}">'
        '<interactionType code="6"/><creationTime value="20230120"/>'
        '<sender><id root="1.2.392.200119.6.102" extension="9900000001"/></sender>'
        f'<receiver><id root="1.2.392.200119.6.101" extension="{receiver}"/></receiver>'
        f'<serviceEventType code="1"/><totalRecordCount value="{count}"/></index>'
    ).encode()


def summary(count) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><summary xmlns="{MHLW}">'
        f'<serviceEventType code="1"/><totalSubjectCount value="{count}"/>'
        '<totalCostAmount value="0" currency="JPY"/>'
        '<totalPaymentAmount value="0" currency="JPY"/>'
        '<totalClaimAmount value="0" currency="JPY"/></summary>'
    ).encode()


def archive(tmp_path, members: dict[str, bytes]):
    path = tmp_path / "9900000001_00219014_202301200_1.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def real_archive(tmp_path, documents, *, indexed=None, summarised=None, claims=0):
    members = {f"{UNIT}DATA/h990000000120230120{n:07d}.xml": d for n, d in enumerate(documents)}
    members |= {f"{UNIT}CLAIMS/c990000000120230120{n:07d}.xml": b"<c/>" for n in range(claims)}
    members[f"{UNIT}XSD/hc08_V08.xsd"] = b"<schema/>"
    members[f"{UNIT}ix08_V08.xml"] = index(len(documents) if indexed is None else indexed)
    members[f"{UNIT}su08_V08.xml"] = summary(len(documents) if summarised is None else summarised)
    return archive(tmp_path, members)


def read(path):
    with checkup_cda.open_submission(path) as submission:
        return submission.receivers, list(submission.documents())


def test_the_standards_eight_digit_insurer_number_is_the_six_digit_one_padded():
    assert checkup_cda.insurer_number_key("00219014") == "00219014"
    assert checkup_cda.insurer_number_key("219014") == "00219014"
    assert checkup_cda.insurer_number_key("０６２１９９９９") == "06219999"
    assert checkup_cda.insurer_number_key("") == ""
    assert checkup_cda.insurer_number_key("21-9014") is None
    assert checkup_cda.insurer_number_key("123456789") is None


def test_a_shift_jis_document_as_senders_write_it_is_read(tmp_path):
    path = tmp_path / "one.xml"
    path.write_bytes(real_document())
    receivers, [document] = read(path)
    assert receivers == () and document.unreadable is None
    assert document.record == checkup_cda.CheckupRecord(
        insured_number="１２３４５６",
        name_kana="ヤマダ　ハナコ",
        birth_date="19600415",
        day_taken="20221102",
        insurer_number="00219014",
        branch="01",
    )


@pytest.mark.parametrize("label", ["Shift_JIS", "shift_jis", "Windows-31J", "MS932", "CP932"])
def test_every_name_of_windows_japanese_is_read_as_cp932(tmp_path, label):
    path = tmp_path / "one.xml"
    path.write_bytes(real_document(encoding=label))
    [document] = read(path)[1]
    assert document.record is not None and document.record.name_kana == "ヤマダ　ハナコ"


def test_a_name_in_parts_is_joined_and_the_kana_one_preferred(tmp_path):
    path = tmp_path / "one.xml"
    name = (
        '<name use="IDE"><family>山田</family><given>花子</given></name>'
        '<name use="SYL"><family>ヤマダ</family><given>ハナコ</given></name>'
    )
    path.write_bytes(real_document(name=name))
    [document] = read(path)[1]
    assert document.record.name_kana == "ヤマダ ハナコ"


def test_a_real_archive_reads_only_the_documents_under_data(tmp_path):
    path = real_archive(tmp_path, [real_document(), real_document(encoding="UTF-8")], claims=2)
    receivers, documents = read(path)
    assert receivers == ("00219014",)
    assert [d.name for d in documents] == [
        f"{UNIT}DATA/h9900000001202301200000000.xml",
        f"{UNIT}DATA/h9900000001202301200000001.xml",
    ]
    assert all(d.record and d.record.day_taken == "20221102" for d in documents)


def test_the_index_may_count_the_claim_files_with_the_documents(tmp_path):
    path = real_archive(tmp_path, [real_document()], indexed=3, claims=2)
    assert len(read(path)[1]) == 1


@pytest.mark.parametrize(
    ("indexed", "summarised", "file", "stated"),
    [(3, None, "ix08_V08.xml", 3), (None, 1, "su08_V08.xml", 1)],
)
def test_an_index_or_summary_that_disagrees_with_the_documents_refuses_the_archive(
    tmp_path, indexed, summarised, file, stated
):
    path = real_archive(
        tmp_path, [real_document(), real_document()], indexed=indexed, summarised=summarised
    )
    with pytest.raises(UnreadableArchive) as refused:
        read(path)
    assert refused.value.why == ArchiveWhy.COUNT_MISMATCH
    assert refused.value.file == f"{UNIT}{file}"
    assert (refused.value.stated, refused.value.found) == (stated, 2)


def test_an_archive_without_documents_under_data_is_refused(tmp_path):
    path = archive(tmp_path, {"results/h1.xml": real_document(), "ix08_V08.xml": index(1)})
    with pytest.raises(UnreadableArchive) as refused:
        read(path)
    assert refused.value.why == ArchiveWhy.NO_DOCUMENTS


def test_an_unreadable_index_refuses_the_archive_naming_it(tmp_path):
    path = archive(
        tmp_path, {f"{UNIT}DATA/h1.xml": real_document(), f"{UNIT}ix08_V08.xml": b"<index"}
    )
    with pytest.raises(UnreadableArchive) as refused:
        read(path)
    assert refused.value.why == ArchiveWhy.INDEX_UNREADABLE
    assert refused.value.file == f"{UNIT}ix08_V08.xml"
    assert refused.value.unreadable.why == Why.MALFORMED


@pytest.mark.parametrize(
    ("data", "why", "detail"),
    [
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'>", Why.MALFORMED, "1:"),
        (b"", Why.MALFORMED, "1:1"),
        (
            real_document(encoding="UTF-8").replace(b"UTF-8", b"EBCDIC-JP"),
            Why.ENCODING,
            "EBCDIC-JP",
        ),
        (real_document().replace(b"Shift_JIS", b"UTF-8"), Why.BYTES, "1:"),
        (real_document(doctype='<!DOCTYPE ClinicalDocument [<!ENTITY a "b">]>'), Why.DOCTYPE, ""),
        (b"<?xml version='1.0'?><checkupClaim/>", Why.NOT_CHECKUP, ""),
        (real_document(insurer="21-9014"), Why.INSURER_NUMBER, ""),
        (b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>", Why.NO_PATIENT, ""),
    ],
)
def test_a_document_that_cannot_be_read_says_why_without_its_content(tmp_path, data, why, detail):
    path = real_archive(tmp_path, [data, real_document()])
    bad, good = read(path)[1]
    assert bad.record is None and bad.unreadable.why == why
    assert bad.unreadable.detail.startswith(detail)
    assert "ヤマダ" not in bad.unreadable.detail and good.record is not None


def test_a_member_too_large_is_not_read_past_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(checkup_cda, "MAX_DOCUMENT_BYTES", 600)  # above the index
    path = real_archive(tmp_path, [real_document()])
    [document] = read(path)[1]
    assert document.unreadable.why == Why.TOO_LARGE


def test_a_damaged_member_is_named_as_one_that_cannot_be_taken_out(tmp_path):
    path = real_archive(tmp_path, [real_document(encoding="UTF-8")])
    data = bytearray(path.read_bytes())
    at = data.index(b"<ClinicalDocument")
    data[at : at + 5] = b"<Xlin"  # stored, so the bytes are there; its CRC no longer fits
    path.write_bytes(bytes(data))
    [document] = read(path)[1]
    assert document.unreadable == checkup_cda.Unreadable(Why.EXTRACT)


def test_a_zip_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(checkup_cda.ZIP_MAGIC + b"not really")
    with pytest.raises(UnreadableArchive) as refused:
        read(path)
    assert refused.value.why == ArchiveWhy.BAD_ZIP
