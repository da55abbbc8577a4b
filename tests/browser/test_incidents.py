"""Leak scoping in a real browser: the security officer uploads a leaked file (made here
from synthetic stored people, strangers and a canary), watches a real task worker scope
it, sees the affected persons per insurer × fiscal year and the deadlines, and opens the
regulator report draft, which prints on A4 without the site's navigation."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import test_list_upload
from tests.browser.conftest import watched_page
from tests.browser.test_login_and_menus import log_in
from tests.incidents import conftest as incidents
from tests.incidents.leaks import load
from tests.incidents.test_scoping import opened, retyped, write_csv
from yobikake.incidents.models import Incident
from yobikake.intake.models import Target
from yobikake.synth.people import synthetic_people

# The fixtures of the list upload's test (a real task worker) and of the canaries.
task_worker = test_list_upload.task_worker
canaries = incidents.canaries
# YOBIKAKE_SCREENSHOTS=docs/screenshots saves the incident page and the report there.
SCREENSHOTS = os.environ.get("YOBIKAKE_SCREENSHOTS")


def screenshot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def leaked_file(world, tmp_path, canaries):
    """Stored people of A (FY2021 and FY2022) and B, retyped; strangers; B's canary."""
    people_a = synthetic_people(30, seed=31, fiscal_year=2022)
    people_b = synthetic_people(20, seed=32, fiscal_year=2022, city="岐阜県テスト町")
    load(world, world.insurer_a, world.staff_a, 2022, people_a)
    load(world, world.insurer_a, world.staff_a, 2021, people_a[:10])
    list_b = load(world, world.insurer_b, world.staff_b, 2022, people_b)
    leaked_a = [p for p in people_a if p.phone][:12]
    leaked_b = [p for p in people_b if p.phone][:5]
    # Strangers: born before anyone stored (who are 40–74), living elsewhere.
    strangers = synthetic_people(200, seed=33, fiscal_year=2022, city="岐阜県よそ市")
    rows = [retyped(p) for p in leaked_a + leaked_b]
    rows += [[*retyped(p)[:2], "1930/1/1", *retyped(p)[3:]] for p in strangers]
    canary = opened(Target.objects.get(pk=min(canaries.of_list(list_b))))
    rows.append([canary["name_kanji"], canary["name_kana"],
                 canary["birth_date"].replace("-", "/"), canary["phone"],
                 canary["address"]])  # fmt: skip
    path = write_csv(tmp_path, rows, name="名簿業者_掲載リスト.csv")
    both = sum(1 for p in leaked_a if p in people_a[:10])
    return path, len(rows), {"a": (both, len(leaked_a)), "b": len(leaked_b)}


@pytest.mark.django_db(transaction=True)
def test_the_security_officer_scopes_a_leaked_file_and_opens_the_report(
    live_server, world, browser, task_worker, tmp_path, canaries
):
    path, rows, expected = leaked_file(world, tmp_path, canaries)
    both, a_2022 = expected["a"]
    base = live_server.url
    context = browser.new_context(
        locale="ja-JP", timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900}
    )
    page = watched_page(context)
    log_in(page, base, world.security)
    page.locator('nav a[href="/incidents/"]').click()
    page.get_by_test_id("new-incident").click()
    form = page.get_by_test_id("incident-form")
    form.locator('input[name="title"]').fill("名簿業者サイトに掲載された名簿")
    form.locator('input[name="aware_on"]').fill("2026-11-20")
    expect(form.locator('input[name="malicious"]')).to_be_checked()
    form.locator('input[name="file"]').set_input_files(str(path))
    form.locator('button[type="submit"]').click()

    incident = Incident.objects.get()
    expect(page).to_have_url(f"{base}/incidents/{incident.pk}/")
    # The status block refreshes itself (htmx) until the worker has scoped the file.
    state = page.get_by_test_id("incident-state")
    expect(state).to_have_attribute("data-state", "scoped", timeout=120_000)
    expect(page.get_by_test_id("rows")).to_have_text(str(rows))
    expect(page.get_by_test_id("unmatched")).to_have_text("200")
    expect(page.get_by_test_id("persons")).to_have_text(str(both + a_2022 + expected["b"]))

    table = page.get_by_test_id("affected")
    expect(table.locator("thead th")).to_contain_text(["令和3年度", "令和4年度"])
    expect(table.locator("thead")).to_contain_text("FY2021")
    row_a = table.locator(f'tr[data-insurer="{world.insurer_a.number}"]')
    expect(row_a.locator("td")).to_contain_text(
        [world.insurer_a.number, str(both), str(a_2022), str(both + a_2022)]
    )
    row_b = table.locator(f'tr[data-insurer="{world.insurer_b.number}"]')
    expect(row_b.get_by_test_id("row-total")).to_have_text(str(expected["b"]))
    expect(table.get_by_test_id("grand-total")).to_have_text(str(both + a_2022 + expected["b"]))
    canary_table = page.get_by_test_id("canaries")
    expect(canary_table).to_contain_text(world.insurer_b.name)
    expect(canary_table).to_contain_text(str(rows + 1))  # the last row, after the header

    deadlines = page.get_by_test_id("deadlines")
    expect(deadlines.get_by_test_id("deadline-preliminary")).to_contain_text("2026-11-23")
    expect(deadlines.get_by_test_id("deadline-preliminary")).to_contain_text("2026-11-25")
    expect(deadlines.get_by_test_id("deadline-final")).to_contain_text("2027-01-19")
    screenshot(page, "incident.png")

    page.get_by_test_id("report-link").click()
    expect(page).to_have_url(f"{base}/incidents/{incident.pk}/report/")
    report = page.get_by_test_id("report")
    expect(report.locator("section.report-item")).to_have_count(9)
    expect(report.get_by_test_id("report-items")).to_contain_text("生年月日")
    expect(report.get_by_test_id("report-item-3")).to_contain_text("令和4年度")
    expect(report.get_by_test_id("report-canaries")).to_contain_text(world.insurer_b.name)
    expect(report.get_by_test_id("report-final")).to_contain_text("2027-01-19")
    screenshot(page, "incident-report.png")
    # On paper: the draft alone, no menu, no buttons; A4.
    page.emulate_media(media="print")
    expect(page.locator("header.site")).to_be_hidden()
    expect(page.get_by_test_id("edit-report")).to_be_hidden()
    expect(report).to_be_visible()
    pdf = page.pdf(format="A4", prefer_css_page_size=True)
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 1
    assert page.console_errors == []
    context.close()
