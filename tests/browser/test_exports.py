"""A results export in a real browser: the insurer's staff request their campaign's
results file, a federation admin approves it, and the staff download it once — a file
only the insurer's private key opens, holding the campaign's people and its watermark."""

import pyrage
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import watched_page
from tests.browser.test_login_and_menus import log_in
from tests.calling.conftest import running_campaign
from tests.custody_registry import confirm_filed_approvals
from tests.exports import conftest as exports
from tests.exports.conftest import decrypt_csv
from yobikake.exports.models import Approval

identities = exports.identities  # the fixture: a key pair per insurer, public halves registered


def test_the_insurer_requests_the_federation_approves_and_the_insurer_downloads(
    live_server, world, browser, identities, settings
):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 3
    campaign, _, people = running_campaign(world, count=10, seed=21)
    base = live_server.url
    staff_context = browser.new_context(locale="ja-JP", accept_downloads=True)
    staff = watched_page(staff_context)
    log_in(staff, base, world.staff_a)
    staff.goto(f"{base}/exports/")
    staff.get_by_test_id(f"campaign-{campaign.pk}").get_by_test_id("request-results").click()
    approval = Approval.objects.get(kind=Approval.Kind.RESULTS)
    expect(staff.get_by_test_id(f"export-{approval.pk}")).to_be_visible()
    expect(staff.get_by_test_id(f"export-{approval.pk}").get_by_test_id("download")).to_have_count(
        0
    )

    admin_context = browser.new_context(locale="ja-JP")
    admin = watched_page(admin_context)
    log_in(admin, base, world.fed_admin)
    admin.goto(f"{base}/exports/approvals/")
    admin.get_by_test_id(f"approval-{approval.pk}").get_by_test_id("approve").click()
    expect(admin.get_by_test_id(f"approval-{approval.pk}")).to_have_count(0)
    expect(admin.get_by_text("鍵保管サービスでパスキーにより確認してください")).to_be_visible()
    # The approver's passkey on the custodian's page (tests/browser/test_custody_approval.py).
    confirm_filed_approvals()

    staff.goto(f"{base}/exports/")
    row = staff.get_by_test_id(f"export-{approval.pk}")
    with staff.expect_download() as info:
        row.get_by_test_id("download").click()
    data = info.value.path().read_bytes()
    assert info.value.suggested_filename.endswith(".csv.age")
    _, *rows = decrypt_csv(data, identities[world.insurer_a.pk])
    assert len(rows) == len(people) + 3
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(data, [identities[world.insurer_b.pk]])
    staff.goto(f"{base}/exports/")
    expect(staff.get_by_test_id(f"export-{approval.pk}").get_by_test_id("download")).to_have_count(
        0
    )
    assert staff.console_errors == [] and admin.console_errors == []
    staff_context.close()
    admin_context.close()
