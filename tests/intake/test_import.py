"""Importing list files: clean files in every form municipal systems send, and a corpus
of broken ones — each gets a clear report, none crashes, none leaves part of a list."""

import io
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.intake.files import HEADERS, csv_bytes, people, row_of, write
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval
from yobikake.intake import services
from yobikake.intake.models import ImportFinding, ListImport, Target, TargetList


def run(world, path, policy="reject", fiscal_year=2022, actor="staff", existing=""):
    list_import = services.start_import(
        actor=world.staff_a if actor == "staff" else None,
        insurer=world.insurer_a,
        fiscal_year=fiscal_year,
        file_name=path.name,
        file_sha256=services.file_sha256(path),
        policy=policy,
        existing=existing,
    )
    return services.run_import(list_import, path)


def assert_nothing_stored():
    assert not TargetList.objects.exists()
    assert not Target.objects.exists()


@pytest.mark.parametrize(
    ("encoding", "bom"), [("cp932", b""), ("utf-8", b""), ("utf-8", b"\xef\xbb\xbf")]
)
def test_a_clean_csv_in_any_encoding_becomes_a_sealed_list(world, tmp_path, encoding, bom):
    persons = people(20)
    path = write(
        tmp_path, "list.csv", bom + csv_bytes([row_of(p) for p in persons], encoding=encoding)
    )
    result = run(world, path)
    assert result.state == ListImport.State.ACCEPTED, result.error_message
    assert (result.rows_submitted, result.rows_accepted, result.findings_count) == (20, 20, 0)
    target_list = result.target_list
    assert (target_list.row_count, target_list.rows_submitted) == (20, 20)
    assert target_list.source_sha256 == services.file_sha256(path)
    assert Target.objects.filter(target_list=target_list).count() == 20
    event = Event.objects.get(tag=AuditTag.LIST_IMPORT)
    assert (event.outcome, event.actor_user_id, event.list_id) == (
        Event.Outcome.ALLOWED,
        world.staff_a.pk,
        target_list.pk,
    )


def test_tsv_half_width_kana_hiragana_and_age_columns_are_read(world, tmp_path):
    import jaconv

    persons = people(12)
    rows = []
    for n, p in enumerate(persons):
        kana = jaconv.z2h(p.name_kana) if n % 2 else jaconv.kata2hira(p.name_kana)
        rows.append(
            [
                p.insured_number,
                p.name_kanji,
                kana,
                p.sex,
                str(p.age_on(date(2023, 3, 31))),
                p.address,
            ]
        )
    headers = ["記号番号", "漢字氏名", "フリガナ", "性別", "年齢", "住所"]
    text = "\n".join("\t".join(r) for r in [headers, *rows]) + "\n"
    result = run(world, write(tmp_path, "list.tsv", text.encode("cp932")))
    assert result.state == ListImport.State.ACCEPTED, list(
        result.findings.values_list("code", flat=True)
    )
    assert result.rows_accepted == 12
    assert result.file_kind == "tsv"


def test_an_excel_file_is_read(world, tmp_path):
    import openpyxl

    persons = people(8)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADERS)
    for p in persons:
        sheet.append(row_of(p))
    path = tmp_path / "list.xlsx"
    book.save(path)
    result = run(world, path)
    assert result.state == ListImport.State.ACCEPTED, list(
        result.findings.values_list("code", flat=True)
    )
    assert (result.file_kind, result.rows_accepted) == ("xlsx", 8)


def _broken_rows(kind):
    """A list of 6 people whose 4th row (spreadsheet row 5) is broken as `kind` says."""
    persons = people(6, seed=23)
    rows = [row_of(p) for p in persons]
    bad = rows[3]
    column = {h: i for i, h in enumerate(HEADERS)}
    edits = {
        "impossible_date": ("生年月日", "昭和45年2月30日"),
        "era_overflow": ("生年月日", "昭和65年1月1日"),
        "not_a_date": ("生年月日", "不明"),
        "too_young": ("生年月日", "2000-01-01"),
        "too_old": ("生年月日", "1930-01-01"),
        "empty_name": ("氏名", ""),
        "empty_kana": ("カナ氏名", ""),
        "kanji_in_kana": ("カナ氏名", "山田タロウ"),
        "bad_sex": ("性別", "X"),
        "empty_sex": ("性別", ""),
        "short_phone": ("電話番号", "123"),
        "impossible_phone": ("電話番号", "000-0000-0000"),
        "bad_postal": ("郵便番号", "12-34"),
        "formula_name": ("氏名", "=cmd|' /C calc'!A0"),
        "formula_kana": ("カナ氏名", "+SUM(1,2)"),
        "formula_address": ("住所", "@SUM(A1)"),
        "formula_insured": ("被保険者番号", "-1+1"),
        "formula_phone": ("電話番号", "=1+1"),
        "formula_sex": ("性別", "=1"),
        "formula_birth": ("生年月日", "=DATE(1970,1,1)"),
        "empty_address": ("住所", ""),
        "bad_insured": ("被保険者番号", "12#34$"),
    }
    if kind == "duplicate_row":
        rows[3] = list(rows[1])
    elif kind == "duplicate_row_without_number":  # then kana + birth date say who
        rows[1][column["被保険者番号"]] = ""
        rows[3] = list(rows[1])
    elif kind == "duplicate_insured":
        bad[column["被保険者番号"]] = rows[0][column["被保険者番号"]]
    else:
        header, value = edits[kind]
        bad[column[header]] = value
    return rows


ROW_CASES = {
    "impossible_date": "birth_date_impossible",
    "era_overflow": "birth_date_era",
    "not_a_date": "birth_date_format",
    "too_young": "age_range",
    "too_old": "age_range",
    "empty_name": "missing",
    "empty_kana": "missing",
    "kanji_in_kana": "kana",
    "bad_sex": "sex",
    "empty_sex": "missing",
    "short_phone": "phone_*",
    "impossible_phone": "phone_*",
    "bad_postal": "postal_code",
    "formula_name": "formula",
    "formula_kana": "formula",
    "formula_address": "formula",
    "formula_insured": "formula",
    "formula_phone": "formula",
    "formula_sex": "formula",
    "formula_birth": "formula",
    "empty_address": "missing",
    "bad_insured": "insured_number",
    "duplicate_row": "insured_number_repeated",
    "duplicate_row_without_number": "duplicate_in_file",
    "duplicate_insured": "insured_number_repeated",
}


@pytest.mark.parametrize("kind", sorted(ROW_CASES))
def test_a_broken_row_rejects_the_file_under_reject_and_is_excluded_under_exclude(
    world, tmp_path, kind
):
    rows = _broken_rows(kind)
    path = write(tmp_path, f"{kind}.csv", csv_bytes(rows))
    rejected = run(world, path, policy="reject")
    assert rejected.state == ListImport.State.REJECTED
    assert_nothing_stored()
    [finding] = ImportFinding.objects.filter(list_import=rejected)
    expected = ROW_CASES[kind]
    assert finding.row == 5
    assert finding.code == expected or (
        expected.endswith("*") and finding.code.startswith(expected[:-1])
    )
    assert finding.message  # a sentence, not a code
    excluded = run(world, path, policy="exclude")
    assert excluded.state == ListImport.State.ACCEPTED
    assert (excluded.rows_submitted, excluded.rows_accepted, excluded.rows_excluded) == (6, 5, 1)
    assert Target.objects.filter(target_list=excluded.target_list).count() == 5


def test_an_insured_number_repeated_in_a_file_is_a_finding_naming_both_rows(world, tmp_path):
    from yobikake.intake.reports import findings_csv

    rows = [row_of(p) for p in people(8, seed=29)]
    number = HEADERS.index("被保険者番号")
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    rows[0][HEADERS.index("電話番号")] = "123"  # row 2 has a finding of its own
    rows[4][number] = rows[0][number]  # row 6 repeats row 2's number as it was sent,
    rows[6][number] = rows[1][number].replace("-", "").translate(full_width)  # 8 row 3's
    result = run(world, write(tmp_path, "a.csv", csv_bytes(rows)), policy="exclude")
    repeated = result.findings.filter(code="insured_number_repeated")
    assert [(f.row, f.ref_row, f.field, f.cell) for f in repeated] == [
        (6, 2, "insured_number", "A6"),
        (8, 3, "insured_number", "A8"),
    ]
    assert repeated[0].message == "同じ被保険者番号がこのファイルの前の行にもあります。"
    assert (result.rows_submitted, result.rows_accepted) == (8, 5)
    report = findings_csv(result).lstrip("\ufeff").splitlines()
    assert report[-1] == (
        "8,被保険者番号,A8,insured_number_repeated,"
        "同じ被保険者番号がこのファイルの前の行にもあります。,"
        "The same insured number appears earlier in this file.,3"
    )


def _junk(kind):
    persons = people(3, seed=31)
    rows = [row_of(p) for p in persons]
    return {
        "empty": b"",
        "blank": b" \r\n\r\n",
        "binary": bytes(range(256)) * 4,
        "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        "broken_zip": b"PK\x03\x04" + b"junk" * 50,
        "utf16": csv_bytes(rows, encoding="utf-16"),
        "header_only": csv_bytes([]),
        "no_name_column": csv_bytes([r[:1] + r[2:] for r in rows], HEADERS[:1] + HEADERS[2:]),
        "no_kana_column": csv_bytes([r[:2] + r[3:] for r in rows], HEADERS[:2] + HEADERS[3:]),
        "no_sex_column": csv_bytes([r[:3] + r[4:] for r in rows], HEADERS[:3] + HEADERS[4:]),
        "no_birth_or_age": csv_bytes([r[:4] + r[5:] for r in rows], HEADERS[:4] + HEADERS[5:]),
        "no_address_column": csv_bytes([r[:6] + r[7:] for r in rows], HEADERS[:6] + HEADERS[7:]),
        "renamed_columns": csv_bytes(rows, [f"列{n}" for n in range(len(HEADERS))]),
        "name_twice": csv_bytes([[*r, r[1]] for r in rows], [*HEADERS, "漢字氏名"]),
        "euc_jp": csv_bytes(rows, encoding="euc_jp"),
        "changes_encoding": csv_bytes(rows * 2000, encoding="utf-8")
        + "佐藤,サトウ\n".encode("cp932"),
    }[kind]


JUNK_CODES = {
    "empty": {"empty"},
    "blank": {"empty"},
    "binary": {"binary"},
    "png": {"binary"},
    "broken_zip": {"format"},
    "utf16": {"binary"},
    "header_only": {"no_rows"},
    "no_name_column": {"columns"},
    "no_kana_column": {"columns"},
    "no_sex_column": {"columns"},
    "no_birth_or_age": {"columns"},
    "no_address_column": {"columns"},
    "renamed_columns": {"columns"},
    "name_twice": {"duplicate_column"},
    "euc_jp": {"columns", "encoding"},
    "changes_encoding": {"encoding"},
}


@pytest.mark.parametrize("kind", sorted(JUNK_CODES))
def test_a_file_that_cannot_be_read_is_rejected_whole_with_a_reason(world, tmp_path, kind):
    path = write(tmp_path, f"{kind}.csv", _junk(kind))
    for policy in ("reject", "exclude"):
        result = run(world, path, policy=policy)
        assert result.state == ListImport.State.REJECTED
        assert result.error_code in JUNK_CODES[kind]
        assert result.error_message
        assert_nothing_stored()
    event = Event.objects.filter(tag=AuditTag.LIST_IMPORT).last()
    assert event.outcome == Event.Outcome.DENIED and event.reason == result.error_code


def test_the_same_person_on_another_list_of_the_same_year_is_found(world, tmp_path):
    persons = people(5)
    first = run(world, write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in persons])))
    assert first.state == ListImport.State.ACCEPTED
    again = run(
        world,
        write(tmp_path, "b.csv", csv_bytes([row_of(persons[2])])),
        policy="exclude",
        existing="add",
    )
    assert again.state == ListImport.State.REJECTED  # nothing valid left
    assert list(again.findings.values_list("code", flat=True)) == ["duplicate_in_year"]


def test_a_second_list_for_the_year_is_refused_without_a_choice_and_the_refusal_recorded(
    world, tmp_path
):
    from yobikake.accounts.errors import AccountError

    first = run(world, write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(4)])))
    assert first.state == ListImport.State.ACCEPTED
    again = write(tmp_path, "b.csv", csv_bytes([row_of(p) for p in people(3, seed=12)]))
    with pytest.raises(AccountError) as refused:
        run(world, again)
    assert refused.value.code == "list_exists"
    assert str(refused.value) == (
        "令和4年度（FY2022）のリストは既に送付されています。このファイルを追加リストとして"
        "加えるか、前のリストと置き換えるかを選んでください。"
    )
    assert ListImport.objects.count() == 1 and TargetList.objects.count() == 1
    denial = Event.objects.filter(tag=AuditTag.LIST_IMPORT).latest("seq")
    assert (denial.outcome, denial.reason) == (Event.Outcome.DENIED, "list_exists")
    assert (denial.actor_user_id, denial.insurer_id) == (world.staff_a.pk, world.insurer_a.pk)
    # A list still waiting to be imported counts as sent; another year, or insurer B's
    # same year, is not concerned.
    queued = services.start_import(
        actor=None,
        insurer=world.insurer_a,
        fiscal_year=2021,
        file_name="c.csv",
        file_sha256="0" * 64,
        policy="reject",
    )
    with pytest.raises(AccountError, match="令和3年度"):
        run(world, again, fiscal_year=2021, actor="cli")
    assert queued.state == ListImport.State.QUEUED
    own = services.start_import(
        actor=world.staff_b,
        insurer=world.insurer_b,
        fiscal_year=2022,
        file_name="b.csv",
        file_sha256="0" * 64,
        policy="reject",
    )
    assert own.existing == ""


def test_a_supplementary_list_is_checked_against_the_earlier_one(world, tmp_path):
    persons = people(6)
    first = run(world, write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in persons[:4]])))
    added = run(
        world,
        write(tmp_path, "b.csv", csv_bytes([row_of(p) for p in persons[3:]])),
        policy="exclude",
        existing="add",
    )
    assert (added.state, added.existing, added.rows_accepted) == ("accepted", "add", 2)
    assert list(added.findings.values_list("row", "code")) == [(2, "duplicate_in_year")]
    first.target_list.refresh_from_db()
    assert first.target_list.superseded_by is None
    assert not Approval.objects.exists()
    event = Event.objects.filter(tag=AuditTag.LIST_IMPORT).latest("seq")
    assert '"existing":"add"' in event.details and '"superseded":0' in event.details


def test_a_replacement_supersedes_the_earlier_lists_and_asks_for_their_deletion(world, tmp_path):
    from yobikake.exports import retention

    persons = people(8)
    first = run(world, write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in persons[:4]])))
    extra = run(
        world,
        write(tmp_path, "b.csv", csv_bytes([row_of(p) for p in persons[4:6]])),
        existing="add",
    )
    # The same people again, corrected: none of them counts as already listed.
    replacement = run(
        world,
        write(tmp_path, "c.csv", csv_bytes([row_of(p) for p in persons[1:7]])),
        existing="replace",
    )
    assert (replacement.state, replacement.rows_accepted, replacement.findings_count) == (
        "accepted",
        6,
        0,
    )
    earlier = [first.target_list, extra.target_list]
    for target_list in earlier:
        target_list.refresh_from_db()
        assert target_list.superseded_by == replacement.target_list
        assert target_list.state == TargetList.State.ACTIVE  # until its deletion is approved
    event = Event.objects.filter(tag=AuditTag.LIST_IMPORT).latest("seq")
    assert event.list_id == replacement.target_list.pk
    assert '"existing":"replace"' in event.details and '"superseded":2' in event.details
    superseded = Event.objects.filter(tag=AuditTag.LIST_SUPERSEDE).order_by("seq")
    approvals = Approval.objects.filter(kind=Approval.Kind.LIST_DELETION).order_by("pk")
    assert [e.list_id for e in superseded] == [t.pk for t in earlier]
    assert [a.subject["list_id"] for a in approvals] == [t.pk for t in earlier]
    assert {a.requested_by for a in approvals} == {world.staff_a}
    for e, a in zip(superseded, approvals, strict=True):
        assert (e.actor_user_id, e.insurer_id) == (world.staff_a.pk, world.insurer_a.pk)
        assert f'"by_list":{replacement.target_list.pk}' in e.details
        assert f'"approval_id":{a.pk}' in e.details
    # Later lists of the year are checked against the replacement only.
    later = run(
        world,
        write(tmp_path, "d.csv", csv_bytes([row_of(p) for p in (persons[0], persons[7])])),
        existing="add",
    )
    assert (later.state, later.rows_accepted) == ("accepted", 2)
    # The security officer approves: the earlier list is shredded and certified.
    certificate = retention.approve_list_deletion(actor=world.security, approval=approvals[0])
    assert certificate.list_id == first.target_list.pk
    first.target_list.refresh_from_db()
    assert first.target_list.state == TargetList.State.SHREDDED


def test_a_replacement_that_fails_leaves_the_earlier_list_as_it_was(world, tmp_path):
    first = run(world, write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(4)])))
    broken = run(
        world, write(tmp_path, "b.csv", csv_bytes(_broken_rows("bad_sex"))), existing="replace"
    )
    assert broken.state == ListImport.State.REJECTED
    first.target_list.refresh_from_db()
    assert first.target_list.superseded_by is None
    assert not Approval.objects.exists()
    assert not Event.objects.filter(tag=AuditTag.LIST_SUPERSEDE).exists()
    assert (
        '"existing":"replace"'
        in Event.objects.filter(tag=AuditTag.LIST_IMPORT).latest("seq").details
    )


def test_a_list_a_running_campaign_calls_is_not_replaced(world, tmp_path):
    from tests.calling.conftest import running_campaign
    from yobikake.accounts.errors import AccountError

    campaign, target_list, _people = running_campaign(world)
    path = write(tmp_path, "b.csv", csv_bytes([row_of(p) for p in people(3, seed=12)]))
    with pytest.raises(AccountError) as refused:
        run(world, path, existing="replace")
    assert refused.value.code == "list_in_campaign"
    assert campaign.name in str(refused.value) and "実施中" in str(refused.value)
    # Chosen before the campaign started, the replacement is refused when it runs.
    campaign.state = "draft"
    campaign.save(update_fields=["state"])
    list_import = services.start_import(
        actor=world.staff_a,
        insurer=world.insurer_a,
        fiscal_year=2022,
        file_name=path.name,
        file_sha256=services.file_sha256(path),
        policy="reject",
        existing="replace",
    )
    campaign.state = "running"
    campaign.save(update_fields=["state"])
    result = services.run_import(list_import, path)
    assert (result.state, result.error_code) == ("rejected", "list_in_campaign")
    assert campaign.name in result.error_message
    target_list.refresh_from_db()
    assert target_list.superseded_by is None
    # Added to, it is.
    assert run(world, path, existing="add").state == ListImport.State.ACCEPTED


def test_staff_cannot_send_another_insurers_list_and_the_refusal_is_recorded(world, tmp_path):
    from yobikake.accounts.errors import NotPermitted

    path = write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(2)]))
    with pytest.raises(NotPermitted):
        services.start_import(
            actor=world.staff_b,
            insurer=world.insurer_a,
            fiscal_year=2022,
            file_name="a.csv",
            file_sha256=services.file_sha256(path),
            policy="reject",
        )
    assert not ListImport.objects.exists()
    denial = Event.objects.get(tag=AuditTag.LIST_IMPORT)
    assert (denial.actor_user_id, denial.reason) == (world.staff_b.pk, "not_yours")


def test_a_year_without_a_contract_is_refused(world, tmp_path):
    from yobikake.accounts.errors import AccountError

    path = write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(2)]))
    with pytest.raises(AccountError, match="2019"):
        run(world, path, fiscal_year=2019)


def test_the_report_names_rows_and_cells_and_never_values(world, tmp_path):
    from yobikake.intake.reports import findings_csv

    rows = _broken_rows("formula_name")
    result = run(world, write(tmp_path, "a.csv", csv_bytes(rows)), policy="exclude")
    report = findings_csv(result)
    assert "5" in report and "B5" in report and "formula" in report
    assert "calc" not in report
    for row in rows:
        for value in row:
            if len(value) > 3:
                assert value not in report


def test_the_command_imports_a_file_and_exits_3_when_rejected(world, tmp_path):
    good = write(tmp_path, "good.csv", csv_bytes([row_of(p) for p in people(4)]))
    out = io.StringIO()
    call_command(
        "intake",
        "import",
        str(good),
        "--insurer",
        world.insurer_a.number,
        "--fiscal-year",
        "2022",
        "--json",
        stdout=out,
    )
    assert '"state": "accepted"' in out.getvalue()
    bad = write(tmp_path, "bad.csv", csv_bytes(_broken_rows("bad_sex")))
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command(
            "intake",
            "import",
            str(bad),
            "--insurer",
            world.insurer_a.number,
            "--fiscal-year",
            "2022",
            "--existing",
            "add",
            stdout=out,
        )
    assert exited.value.code == 3
    assert ListImport.objects.get(file_name="bad.csv").state == ListImport.State.REJECTED
    report = out.getvalue().split("report: ")[1].strip()
    assert "sex" in Path(report).read_text(encoding="utf-8")


@pytest.mark.parametrize("encoding", ["cp932", "utf-8"])
def test_a_multibyte_character_cut_by_the_encoding_sample_is_no_problem(encoding):
    from yobikake.intake.reading import SNIFF_BYTES, detect_encoding

    for prefix in ("", "a", "ab", "abc"):  # shifts where the sample cuts a character
        data = (prefix + "佐藤" * SNIFF_BYTES).encode(encoding)
        assert detect_encoding(data[:SNIFF_BYTES]) == encoding


def test_an_insurers_own_header_is_saved_once_and_read_in_later_files(world, tmp_path):
    persons = people(3)
    headers = [
        "被保険者番号",
        "お名前",
        "カナ氏名",
        "性別",
        "生年月日",
        "郵便番号",
        "住所",
        "電話番号",
    ]
    path = write(tmp_path, "own.csv", csv_bytes([row_of(p) for p in persons], headers))
    assert run(world, path).error_code == "columns"
    out = io.StringIO()
    call_command(
        "intake", "map", "--insurer", world.insurer_a.number, "お名前", "name_kanji", stdout=out
    )
    assert "お名前\tname_kanji" in out.getvalue()
    assert run(world, path).state == ListImport.State.ACCEPTED


def test_a_full_width_formula_prefix_is_caught_too(world, tmp_path):
    rows = _broken_rows("formula_name")
    rows[3][1] = '＝HYPERLINK("http://example.invalid")'
    result = run(world, write(tmp_path, "fw.csv", csv_bytes(rows)), policy="exclude")
    assert list(result.findings.values_list("code", flat=True)) == ["formula"]


def test_an_unexpected_error_marks_the_import_failed_and_keeps_nothing(
    world, tmp_path, monkeypatch
):
    from yobikake.intake import writer

    def broken(self, **fields):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer.ListWriter, "finish", broken)
    path = write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(3)]))
    with pytest.raises(RuntimeError):
        run(world, path)
    list_import = ListImport.objects.get()
    assert (list_import.state, list_import.error_code) == (ListImport.State.FAILED, "runtimeerror")
    assert_nothing_stored()
    event = Event.objects.filter(tag=AuditTag.LIST_IMPORT).last()
    assert event.outcome == Event.Outcome.DENIED and event.reason == "runtimeerror"


def test_a_tiny_workbook_naming_a_far_cell_is_refused_before_it_is_laid_out(world, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADERS)
    sheet["XFD1048576"] = "x"
    path = tmp_path / "bomb.xlsx"
    book.save(path)
    assert path.stat().st_size < 20_000
    result = run(world, path)
    assert (result.state, result.error_code) == (ListImport.State.REJECTED, "too_large")
    assert_nothing_stored()


def test_no_list_is_kept_without_its_audit_event(world, tmp_path, monkeypatch):
    from yobikake.intake import services as intake_services

    real = intake_services.append_event
    calls = []

    def fails_once(**kwargs):
        calls.append(kwargs.get("denied"))
        if len(calls) == 1:
            raise RuntimeError("audit log unavailable")
        return real(**kwargs)

    monkeypatch.setattr(intake_services, "append_event", fails_once)
    path = write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in people(3)]))
    with pytest.raises(RuntimeError):
        run(world, path)
    assert_nothing_stored()
    assert ListImport.objects.get().state == ListImport.State.FAILED
    assert calls == ["", "runtimeerror"]  # the acceptance was never recorded, the failure was


def test_the_command_asks_for_a_choice_on_a_second_list_of_the_year(world, tmp_path):
    from django.core.management.base import CommandError

    def command(path, *extra):
        out = io.StringIO()
        arguments = ["--insurer", world.insurer_a.number, "--fiscal-year", "2022", "--json"]
        call_command("intake", "import", str(path), *arguments, *extra, stdout=out)
        return out.getvalue()

    persons = people(6)
    command(write(tmp_path, "a.csv", csv_bytes([row_of(p) for p in persons[:3]])))
    second = write(tmp_path, "b.csv", csv_bytes([row_of(p) for p in persons[3:]]))
    with pytest.raises(CommandError, match=r"既に送付されています.*--existing add"):
        command(second)
    assert '"state": "accepted"' in command(second, "--existing", "replace")
    replacement = ListImport.objects.get(file_name="b.csv")
    assert replacement.existing == "replace" and replacement.created_by is None
    first = TargetList.objects.get(source__file_name="a.csv")
    assert first.superseded_by == replacement.target_list
    # No person sent it: the superseded list's deletion is for its insurer to request.
    assert not Approval.objects.exists()
    superseded = Event.objects.get(tag=AuditTag.LIST_SUPERSEDE)
    assert (superseded.list_id, superseded.actor_user_id) == (first.pk, None)
    assert '"approval_id":null' in superseded.details
    # A manifest names the choice in a column of its own.
    third = write(tmp_path, "c.csv", csv_bytes([row_of(p) for p in people(2, seed=44)]))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f"file,insurer_number,fiscal_year,existing\nc.csv,{world.insurer_a.number},2022,add\n"
    )
    out = io.StringIO()
    call_command("intake", "import", "--manifest", str(manifest), "--json", stdout=out)
    assert '"state": "accepted"' in out.getvalue()
    assert ListImport.objects.get(file_name=third.name).existing == "add"
