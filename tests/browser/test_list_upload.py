"""Insurer staff send a CP932 list in a real browser: the import runs in a real task
worker, the page shows its progress, then the findings; another insurer's staff cannot
see it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_login_and_menus import log_in
from tests.intake.files import csv_bytes, row_of
from tests.intake.test_kill import database_env
from tests.pii import LOADED_PEOPLE
from yobikake.intake.models import ListImport
from yobikake.synth.people import synthetic_people


@pytest.fixture
def task_worker(live_server, settings, custody_process):
    """A real `yobikake db_worker` on the test database, and the site queueing to it,
    both reaching the same real custodian."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    env = database_env()
    env.pop("YOBIKAKE_TASKS_BACKEND", None)
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("yobikake")),
            "db_worker",
            "--interval",
            "0.2",
            "--no-startup-delay",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield worker
    worker.terminate()
    worker.wait(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_staff_send_a_cp932_list_watch_it_and_see_the_findings(
    live_server, world, browser, task_worker, tmp_path
):
    persons = synthetic_people(20000, seed=41, fiscal_year=2022)
    LOADED_PEOPLE.extend(persons)
    rows = [row_of(p) for p in persons]
    rows[9][3] = "X"  # row 11: a sex code that does not exist
    rows[20][4] = "昭和45年2月30日"  # row 22: no such date
    path = tmp_path / "テスト市A_令和4年度.csv"
    path.write_bytes(csv_bytes(rows, encoding="cp932"))

    base = live_server.url
    page = browser.new_context(locale="ja-JP").new_page()
    log_in(page, base, world.staff_a)
    page.get_by_role("link", name="対象者リスト").click()
    page.get_by_test_id("upload-link").click()
    page.get_by_label("年度").select_option("2022")
    page.get_by_label("正しい行のみ受け付け、エラー行は除外する").check()
    page.get_by_label("リストファイル（CSV・TSV・Excel）").set_input_files(str(path))
    page.get_by_role("button", name="送付").click()

    status = page.get_by_test_id("import-state")
    expect(status).to_have_text(re.compile("待機中|取込中"))
    expect(page.get_by_test_id("rows-done")).to_contain_text("行を読み込みました", timeout=30_000)
    expect(status).to_have_text("受理", timeout=120_000)
    expect(page.get_by_test_id("import-counts")).to_have_text(
        "送付 20000 行、受理 19998 行、除外 2 行。"
    )
    findings = page.get_by_test_id("findings").locator("tbody tr")
    expect(findings).to_have_count(2)
    expect(findings.nth(0)).to_contain_text("D11")
    expect(findings.nth(0)).to_contain_text("性別は 1、2、男、女 のいずれかです。")
    expect(findings.nth(1)).to_contain_text("存在しない生年月日です")
    with page.expect_download() as download:
        page.get_by_test_id("report-link").click()
    report = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "D11" in report and rows[9][1] not in report

    list_import = ListImport.objects.get()
    assert list_import.state == ListImport.State.ACCEPTED

    # Insurer B's staff see no trace of it, and the import's page is a 404 for them.
    other = browser.new_context(locale="ja-JP").new_page()
    log_in(other, base, world.staff_b)
    other.get_by_role("link", name="対象者リスト").click()
    expect(other.get_by_test_id("imports")).not_to_contain_text("テスト市A")
    response = other.goto(f"{base}/lists/imports/{list_import.pk}/")
    assert response.status == 404
