"""Checkup results in the national standard electronic format (HL7 CDA documents, one
or a ZIP of them) go through the same matching, counting and audit as a results sheet."""

import json
import zipfile
from dataclasses import replace
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command

from tests.calling.conftest import running_campaign
from tests.intake.files import csv_bytes, row_of, write
from tests.intake.files import people as list_people
from tests.intake.test_import import run
from tests.jp.test_checkup_cda import UNIT, archive, index, real_archive, real_document
from tests.pii import LOADED_PEOPLE
from yobikake.accounts.errors import AccountError
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import services
from yobikake.calling.models import CallTarget
from yobikake.calling.results import record_checkup_results
from yobikake.intake.services import load_target_list
from yobikake.jp.normalize import insured_number_key, kana_key
from yobikake.synth import cda
from yobikake.synth.cda import cda_document, write_cda_zip
from yobikake.synth.people import synthetic_people
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind

IN_YEAR, NEXT_YEAR = date(2022, 11, 2), date(2023, 6, 1)  # the campaign's is FY2022


def attended_days(campaign):
    return sorted(
        CallTarget.objects.filter(campaign=campaign)
        .exclude(attended_on=None)
        .values_list("attended_on", flat=True)
    )


def test_a_zip_of_cda_documents_marks_exactly_the_people_in_it(calling_day, world, tmp_path):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    first, second, third = [p for p in people if p.birth_date is not None][:3]
    stranger = replace(first, insured_number="99-999999", name_kana="ダレ モイナイ")
    by_kana = replace(second, insured_number="")  # only kana and birth date name them
    taken = [(first, IN_YEAR), (by_kana, IN_YEAR), (third, NEXT_YEAR), (stranger, IN_YEAR)]
    documents = [cda_document(p, day, insurer_number=world.insurer_a.number) for p, day in taken]
    broken = b"<ClinicalDocument xmlns='urn:hl7-org:v3'>"
    path = real_archive(tmp_path, [*documents, broken])
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.outside_year) == (5, 2, 1)
    assert (summary.unmatched, summary.invalid) == (1, 1)
    assert attended_days(campaign) == [IN_YEAR, IN_YEAR]
    marked = CallTarget.objects.filter(campaign=campaign).exclude(attended_on=None)
    indexer = Indexer(datakeys.index_key(world.insurer_a.pk))
    assert {bytes(v) for v in marked.values_list("target__idx_insured_number", flat=True)} == {
        indexer.value(IndexKind.INSURED_NUMBER, insured_number_key(p.insured_number))
        for p in (first, second)
    }
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT, outcome=Event.Outcome.ALLOWED)
    assert json.loads(event.details) == {
        "rows": 5, "matched": 2, "outside_year": 1, "unmatched": 1, "invalid": 1,
        "call_targets": 2,
    }  # fmt: skip


def test_a_single_cda_document_is_read_like_a_one_row_sheet(calling_day, world, tmp_path):
    campaign, _, people = running_campaign(world, count=4, seed=6)
    path = tmp_path / "one.xml"
    path.write_bytes(cda_document(people[0], IN_YEAR, insurer_number=world.insurer_a.number))
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.invalid) == (1, 1, 0)
    assert attended_days(campaign) == [IN_YEAR]


def test_a_document_with_a_doctype_is_an_invalid_row_and_nothing_expands(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=4, seed=7)
    document = cda_document(people[0], IN_YEAR, insurer_number=world.insurer_a.number).decode()
    declaration, _, body = document.partition("?>")
    laughs = '<!DOCTYPE ClinicalDocument [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    path = tmp_path / "bomb.xml"
    path.write_text(f"{declaration}?>{laughs}{body}", encoding="utf-8")
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.invalid) == (1, 0, 1)
    assert attended_days(campaign) == []


def test_a_document_without_a_day_or_a_person_is_an_invalid_row(calling_day, world, tmp_path):
    campaign, _, _ = running_campaign(world, count=4, seed=8)
    path = tmp_path / "empty.xml"
    path.write_text(
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole/>'
        "</recordTarget></ClinicalDocument>",
        encoding="utf-8",
    )
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.invalid) == (1, 1)
    assert attended_days(campaign) == []


def test_a_file_naming_another_insurer_is_refused_whole_on_the_record(calling_day, world, tmp_path):
    """The standard writes the number padded to eight digits: 00219022 is insurer B's."""
    campaign, _, people = running_campaign(world, count=6, seed=9)
    ours = cda_document(people[0], IN_YEAR, insurer_number=world.insurer_a.number)
    theirs = cda_document(people[1], IN_YEAR, insurer_number=world.insurer_b.number)
    path = real_archive(tmp_path, [ours, theirs])
    with pytest.raises(AccountError) as refused:
        record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert refused.value.code == "other_insurer"
    assert f"（保険者番号 {world.insurer_b.number.zfill(8)}）" in str(refused.value)
    assert attended_days(campaign) == []  # not even the first document's person
    denial = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT, outcome=Event.Outcome.DENIED)
    assert denial.reason == "other_insurer" and denial.actor_user_id == world.staff_a.pk


def test_synth_cda_writes_results_for_a_share_of_a_list_files_people(calling_day, world, tmp_path):
    """`yobikake synth cda --from-list` over a list file as `synth lists` writes it: the
    documents name people of that list, who match once the list is imported."""
    path = write(
        tmp_path,
        f"{world.insurer_a.number}_2022.csv",
        csv_bytes([row_of(p) for p in list_people(30, seed=4)]),
    )
    imported = run(world, path)
    campaign = services.create_campaign(
        actor=world.supervisor, insurer=world.insurer_a, fiscal_year=2022,
        lists=[imported.target_list],
    )  # fmt: skip
    services.start_campaign(actor=world.supervisor, campaign=campaign, seed=1)
    out = tmp_path / "results.zip"
    said = StringIO()
    call_command(
        "synth", "cda", "--from-list", str(path), "--share", "0.5", "--seed", "3",
        "--out", str(out), stdout=said,
    )  # fmt: skip
    documents = int(said.getvalue().split()[1])
    assert f"insurer {world.insurer_a.number}, FY2022" in said.getvalue()
    assert 5 <= documents <= 25
    # A document without 記号 names its person by kana and birth date only, which a list
    # row giving only the age cannot match.
    with zipfile.ZipFile(out) as bundle:
        written = [bundle.read(n) for n in bundle.namelist() if "/DATA/" in n]
    nameless = sum(
        cda.CARD_SYMBOL_OID.encode() not in d and b"<birthTime" not in d for d in written
    )
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=out)
    assert (summary.rows, summary.unmatched) == (documents, nameless)
    assert summary.matched == documents - nameless > 0
    assert len(attended_days(campaign)) == documents - nameless


def kana_birth_document(person, day, insurer, **form):
    """A document as a checkup institution writes it (see tests.jp.test_checkup_cda): no
    記号, one unstructured kana name, Shift_JIS."""
    form.setdefault("ids", '<id extension="９９９９９９" root="1.2.392.200119.6.205"/>')
    return real_document(
        insurer=insurer.number.zfill(8),
        name=f"<name>{person.name_kana.replace(' ', '　')}</name>",
        born=f"{person.birth_date:%Y%m%d}",
        day=f"{day:%Y%m%d}",
        **form,
    )


def test_results_as_real_senders_write_them_are_matched(calling_day, world, tmp_path):
    """Eight-digit insurer number, no 記号, one unstructured name, Shift_JIS, and the
    archive's index, summary, CLAIMS/ and XSD/ beside DATA/."""
    campaign, _, people = running_campaign(world, count=12, seed=5)
    first, second = [p for p in people if p.birth_date is not None][:2]
    path = real_archive(
        tmp_path,
        [kana_birth_document(p, IN_YEAR, world.insurer_a) for p in (first, second)],
        claims=2,
    )
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.invalid, summary.problems) == (2, 2, 0, ())
    assert attended_days(campaign) == [IN_YEAR, IN_YEAR]


def test_synth_cda_writes_what_real_senders_write(calling_day, world, tmp_path):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    dated = [p for p in people if p.birth_date is not None][:6]
    path = tmp_path / "results.zip"
    write_cda_zip([(p, IN_YEAR) for p in dated], path, insurer_number=world.insurer_a.number)
    padded = world.insurer_a.number.zfill(8)
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
        [unit] = {n.split("/")[0] for n in names}
        assert unit.startswith(f"{cda.SYNTHETIC_SENDER}_{padded}_") and unit.endswith("0_1")
        assert sum("/DATA/" in n for n in names) == sum("/CLAIMS/" in n for n in names) == 6
        assert any("/XSD/" in n for n in names)
        index = bundle.read(f"{unit}/ix08_V08.xml").decode()
        assert cda.MHLW_NS in index and f'extension="{padded}"' in index
        assert 'totalRecordCount value="6"' in index
        assert 'totalSubjectCount value="6"' in bundle.read(f"{unit}/su08_V08.xml").decode()
        documents = [bundle.read(n) for n in names if "/DATA/" in n]
    assert all(f'extension="{padded}"'.encode() in d for d in documents)
    # The forms real senders use, each of them somewhere in the archive.
    shift_jis = [d for d in documents if d.startswith(b'<?xml version="1.0" encoding="Shift_JIS"')]
    assert 0 < len(shift_jis) < 6
    assert any(cda.CARD_SYMBOL_OID.encode() not in d for d in documents)
    assert any(cda.CARD_SYMBOL_OID.encode() in d for d in documents)
    assert any(cda.CARD_BRANCH_OID.encode() in d for d in documents)
    assert any(b"<family>" not in d for d in documents)
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.invalid) == (6, 6, 0)
    assert len(attended_days(campaign)) == 6


def household_campaign(world, seed=5):
    """A started campaign whose first two people share a card (one household's 記号・番号,
    as municipal NHI cards had before each person got an 枝番)."""
    people = [p for p in synthetic_people(12, seed=seed, fiscal_year=2022) if p.birth_date]
    people[1] = replace(people[1], insured_number=people[0].insured_number)
    LOADED_PEOPLE.extend(people)
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people
    )
    campaign = services.create_campaign(
        actor=world.supervisor, insurer=world.insurer_a, fiscal_year=2022, lists=[target_list]
    )
    services.assign_operators(actor=world.supervisor, campaign=campaign, operators=[world.operator])
    return services.start_campaign(actor=world.supervisor, campaign=campaign, seed=seed), people


def test_an_edaban_makes_the_card_a_households_and_the_kana_and_birth_date_pick_the_person(
    calling_day, world, tmp_path
):
    campaign, people = household_campaign(world)
    husband, wife = people[:2]
    assert husband.insured_number == wife.insured_number
    symbol, _, number = wife.insured_number.partition("-")
    card = (
        f'<id extension="{symbol}" root="1.2.392.200119.6.204"/>'
        f'<id extension="{number}" root="1.2.392.200119.6.205"/>'
        '<id extension="02" root="1.2.392.200119.6.211"/>'
    )
    path = tmp_path / "wife.xml"
    path.write_bytes(kana_birth_document(wife, IN_YEAR, world.insurer_a, ids=card))
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched) == (1, 1)
    marked = CallTarget.objects.filter(campaign=campaign).exclude(attended_on=None)
    indexer = Indexer(datakeys.index_key(world.insurer_a.pk))
    [kana_birth] = marked.values_list("target__idx_kana_birth", flat=True)
    assert bytes(kana_birth) == indexer.value(
        IndexKind.KANA_BIRTH, kana_key(wife.name_kana), wife.birth_date.isoformat()
    )
    # The household member who is not on the list took the checkup: nobody is marked.
    stranger = replace(wife, name_kana="ダレ モイナイ")
    path.write_bytes(kana_birth_document(stranger, IN_YEAR, world.insurer_a, ids=card))
    CallTarget.objects.update(attended_on=None)
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.matched, summary.unmatched) == (0, 1)
    assert attended_days(campaign) == []


def test_an_archive_whose_index_disagrees_with_its_documents_is_refused_whole(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    dated = [p for p in people if p.birth_date is not None][:2]
    documents = [kana_birth_document(p, IN_YEAR, world.insurer_a) for p in dated]
    path = real_archive(tmp_path, documents, indexed=3)
    with pytest.raises(AccountError) as refused:
        record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert refused.value.code == "archive_counts"
    assert str(refused.value) == (
        f"{UNIT}ix08_V08.xml は健診結果ファイルを3件としていますが、"
        "DATAフォルダには2件あります。何も記録していません。"
    )
    assert attended_days(campaign) == []
    denial = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert denial.outcome == Event.Outcome.DENIED and denial.reason == "archive_counts"


def test_each_document_that_cannot_be_read_is_named_with_why(calling_day, world, tmp_path):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    [person] = [p for p in people if p.birth_date is not None][:1]
    broken = b"<ClinicalDocument xmlns='urn:hl7-org:v3'><recordTarget>"
    mislabelled = real_document(insurer=world.insurer_a.number).replace(b"Shift_JIS", b"UTF-8")
    unknown = real_document(encoding="UTF-8").replace(b"UTF-8", b"EBCDIC-JP")
    path = real_archive(
        tmp_path,
        [kana_birth_document(person, IN_YEAR, world.insurer_a), broken, mislabelled, unknown],
    )
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.invalid) == (4, 1, 3)
    data = f"{UNIT}DATA/h990000000120230120"
    assert summary.problems[0] == f"{data}0000001.xml: XMLとして正しくありません（1行56列）。"
    assert summary.problems[1].startswith(
        f"{data}0000002.xml: 宣言された文字コードと合わない文字があります（1行"
    )
    assert summary.problems[2] == (
        f"{data}0000003.xml: 宣言された文字コード「EBCDIC-JP」は読めません。"
    )
    assert len(summary.problems) == 3
    assert attended_days(campaign) == [IN_YEAR]
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert "problems" not in event.details and UNIT not in event.details


def test_past_so_many_unreadable_documents_the_rest_are_counted(
    calling_day, world, tmp_path, monkeypatch
):
    from yobikake.calling import results

    monkeypatch.setattr(results, "MAX_PROBLEMS", 1)
    running_campaign(world, count=4, seed=6)
    path = real_archive(tmp_path, [b"<a", b"<b", b"<c"])
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert summary.invalid == 3 and len(summary.problems) == 2
    assert summary.problems[1] == "ほかに読めなかった健診結果ファイルが2件あります。"


def test_a_document_that_cannot_be_read_alone_says_why(calling_day, world, tmp_path):
    running_campaign(world, count=4, seed=6)
    path = tmp_path / "one.xml"
    path.write_bytes(real_document(encoding="UTF-8").replace(b"UTF-8", b"ISO-2022-JP-3"))
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.invalid) == (1, 1)
    assert summary.problems == ("宣言された文字コード「ISO-2022-JP-3」は読めません。",)


def test_an_archive_addressed_to_another_insurer_is_refused(calling_day, world, tmp_path):
    campaign, _, people = running_campaign(world, count=6, seed=9)
    [person] = [p for p in people if p.birth_date is not None][:1]
    path = archive(
        tmp_path,
        {
            f"{UNIT}DATA/h1.xml": kana_birth_document(person, IN_YEAR, world.insurer_a),
            f"{UNIT}ix08_V08.xml": index(1, receiver=world.insurer_b.number.zfill(8)),
        },
    )
    with pytest.raises(AccountError) as refused:
        record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert refused.value.code == "other_insurer"
    assert attended_days(campaign) == []


def test_results_import_goes_through_the_service_on_the_record_and_prints_a_summary(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    dated = [p for p in people if p.birth_date is not None][:2]
    documents = [kana_birth_document(p, IN_YEAR, world.insurer_a) for p in dated]
    path = real_archive(tmp_path, [*documents, b"<ClinicalDocument"])
    said = StringIO()
    call_command("results", "import", str(path), "--insurer", world.insurer_a.number, stdout=said)
    assert said.getvalue().splitlines() == [
        f"{path.name}: 3 documents or rows — 2 matched, 0 taken outside the campaign's "
        "fiscal year, 0 on no campaign, 1 unusable",
        f"  {UNIT}DATA/h9900000001202301200000002.xml: XMLとして正しくありません（1行18列）。",
    ]
    assert attended_days(campaign) == [IN_YEAR, IN_YEAR]
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert event.outcome == Event.Outcome.ALLOWED and event.actor_user_id is None
    assert event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details)["matched"] == 2


def test_results_import_takes_the_standards_padded_insurer_number_and_answers_json(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    [person] = [p for p in people if p.birth_date is not None][:1]
    path = real_archive(tmp_path, [kana_birth_document(person, IN_YEAR, world.insurer_a)])
    said = StringIO()
    call_command(
        "results", "import", str(path), "--insurer", world.insurer_a.number.zfill(8), "--json",
        stdout=said,
    )  # fmt: skip
    assert json.loads(said.getvalue()) == {
        "file": path.name, "rows": 1, "matched": 1, "outside_year": 0, "unmatched": 0,
        "invalid": 0, "problems": [],
    }  # fmt: skip
    assert attended_days(campaign) == [IN_YEAR]


def test_results_import_refuses_a_file_on_the_record_and_changes_nothing(
    calling_day, world, tmp_path
):
    from django.core.management.base import CommandError

    campaign, _, people = running_campaign(world, count=12, seed=5)
    [person] = [p for p in people if p.birth_date is not None][:1]
    path = real_archive(
        tmp_path, [kana_birth_document(person, IN_YEAR, world.insurer_a)], summarised=4
    )
    with pytest.raises(CommandError) as refused:
        call_command("results", "import", str(path), "--insurer", world.insurer_a.number)
    assert str(refused.value) == (
        f"{path.name}: {UNIT}su08_V08.xml は健診結果ファイルを4件としていますが、"
        "DATAフォルダには1件あります。何も記録していません。"
    )
    assert attended_days(campaign) == []
    denial = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert denial.outcome == Event.Outcome.DENIED and denial.reason == "archive_counts"
    with pytest.raises(CommandError, match="no insurer has the number 999999"):
        call_command("results", "import", str(path), "--insurer", "999999")
    with pytest.raises(CommandError, match="no file at"):
        call_command("results", "import", str(tmp_path / "none.zip"), "--insurer", "219014")
