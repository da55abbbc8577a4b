"""Checkup results in the national standard electronic format (HL7 CDA documents, one
or a ZIP of them) go through the same matching, counting and audit as a results sheet."""

import json
import zipfile
from dataclasses import replace
from datetime import date

from tests.calling.conftest import running_campaign
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget
from yobikake.calling.results import record_checkup_results
from yobikake.jp.normalize import insured_number_key
from yobikake.synth.cda import cda_document, write_cda_zip
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
    path = tmp_path / "results.zip"
    write_cda_zip(
        [(first, IN_YEAR), (by_kana, IN_YEAR), (third, NEXT_YEAR), (stranger, IN_YEAR)],
        path,
        insurer_number=world.insurer_a.number,
    )
    with zipfile.ZipFile(path, "a") as bundle:
        bundle.writestr("DATA/broken.xml", b"<ClinicalDocument xmlns='urn:hl7-org:v3'>")
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
    import pytest

    from yobikake.accounts.errors import AccountError

    campaign, _, people = running_campaign(world, count=6, seed=9)
    path = tmp_path / "results.zip"
    write_cda_zip([(people[0], IN_YEAR)], path, insurer_number=world.insurer_a.number)
    with zipfile.ZipFile(path, "a") as bundle:
        bundle.writestr(
            "DATA/other.xml",
            cda_document(people[1], IN_YEAR, insurer_number=world.insurer_b.number),
        )
    with pytest.raises(AccountError) as refused:
        record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert refused.value.code == "other_insurer" and world.insurer_b.number in str(refused.value)
    assert attended_days(campaign) == []  # not even the first document's person
    denial = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT, outcome=Event.Outcome.DENIED)
    assert denial.reason == "other_insurer" and denial.actor_user_id == world.staff_a.pk


def test_synth_cda_writes_results_for_a_share_of_a_list_files_people(calling_day, world, tmp_path):
    """`yobikake synth cda --from-list` over a list file as `synth lists` writes it: the
    documents name people of that list, who match once the list is imported."""
    from io import StringIO

    from django.core.management import call_command

    from tests.intake.files import csv_bytes, people, row_of, write
    from tests.intake.test_import import run
    from yobikake.calling import services

    path = write(
        tmp_path,
        f"{world.insurer_a.number}_2022.csv",
        csv_bytes([row_of(p) for p in people(30, seed=4)]),
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
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=out)
    assert (summary.rows, summary.matched, summary.unmatched) == (documents, documents, 0)
    assert len(attended_days(campaign)) == documents
