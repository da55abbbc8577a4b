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
from yobikake.intake import services
from yobikake.intake.models import ImportFinding, ListImport, Target, TargetList


def run(world, path, policy="reject", fiscal_year=2022, actor="staff"):
    list_import = services.start_import(
        actor=world.staff_a if actor == "staff" else None,
        insurer=world.insurer_a,
        fiscal_year=fiscal_year,
        file_name=path.name,
        file_sha256=services.file_sha256(path),
        policy=policy,
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
    "duplicate_row": "duplicate_in_file",
    "duplicate_insured": "duplicate_in_file",
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
    again = run(world, write(tmp_path, "b.csv", csv_bytes([row_of(persons[2])])), policy="exclude")
    assert again.state == ListImport.State.REJECTED  # nothing valid left
    assert list(again.findings.values_list("code", flat=True)) == ["duplicate_in_year"]


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
