"""With canaries planted, as outside the tests, no count and no screen shows them: a
list's pages and the participation matrix count the rows accepted, a campaign's progress
(page and API) and the supervisor board count the people sent, and an insurer's
notification list holds its affected persons without the canary the leaked file held.

Each test first checks that the canaries are really there (stored beside the people
sent), so that every count compared with the people sent could have come out higher."""

import re

from django.utils import translation
from django.utils.translation import gettext

from tests.calling import conftest as calling_fixtures
from tests.calling.conftest import running_campaign
from tests.custody_registry import approve_confirmed
from tests.exports import conftest as export_fixtures
from tests.exports.conftest import decrypt_csv
from tests.incidents.leaks import scoped_leak
from tests.incidents.test_scoping import opened
from tests.intake.files import csv_bytes, people, row_of, write
from tests.intake.test_import import run
from yobikake.incidents import notification, selectors
from yobikake.intake.models import Target

PLANTED = 3  # the `canaries` fixture's YOBIKAKE_CANARIES_PER_LIST
# Fixtures of other directories, here too: a calling day's clock, the insurers' age keys.
calling_day = calling_fixtures.calling_day
identities = export_fixtures.identities


def assert_planted(canaries, target_list, sent):
    planted = canaries.of_list(target_list)
    assert len(planted) == PLANTED
    stored = Target.objects.filter(target_list=target_list)
    assert stored.count() == sent + PLANTED
    assert planted <= set(stored.values_list("pk", flat=True))


def figures(html, prefix):
    """`data-testid="<prefix><name>">N<` on a page, as {name: N}."""
    found = re.findall(rf'data-testid="{prefix}(\w+)">(\d+)<', html)
    return {name: int(n) for name, n in found}


def test_a_lists_pages_and_the_matrix_count_the_rows_accepted(canaries, world, tmp_path, as_user):
    rows = [row_of(p) for p in people(12)]
    rows[0][3] = "X"  # one row excluded: 12 sent, 11 accepted
    result = run(world, write(tmp_path, "list.csv", csv_bytes(rows)), policy="exclude")
    target_list = result.target_list
    assert_planted(canaries, target_list, sent=11)
    assert (result.rows_submitted, result.rows_accepted, target_list.row_count) == (12, 11, 11)

    staff = as_user(world.staff_a)
    assert "<td>12</td><td>11</td>" in staff.get("/lists/").text
    detail = staff.get(f"/lists/imports/{result.pk}/").text
    with translation.override("ja"):
        counts = gettext("%(sent)s rows sent, %(accepted)s accepted, %(excluded)s excluded.")
    assert counts % {"sent": 12, "accepted": 11, "excluded": 1} in detail
    api = staff.get(f"/api/v1/lists/{target_list.pk}").json()
    assert api["rows"] == 11 == sum(api["aggregates"]["sex_age_band"].values())

    matrix = as_user(world.fed_admin).get("/insurers/participation/").text
    assert "12 / 11" in matrix and 'data-testid="rows-submitted-total">12<' in matrix
    assert as_user(world.supervisor).get("/campaigns/new/").text.count("（11人）") == 1


def test_a_campaigns_progress_page_and_api_count_the_people_sent(
    canaries, calling_day, world, as_user
):
    campaign, target_list, sent = running_campaign(world, count=20, holdout_share=0)
    assert_planted(canaries, target_list, sent=20)
    with_phone = sum(1 for p in sent if p.phone)

    staff = as_user(world.staff_a)
    page = figures(staff.get(f"/campaigns/{campaign.pk}/").text, "funnel-")
    assert (page["targets"], page["number_known"], page["holdout"]) == (20, with_phone, 0)
    api = staff.get(f"/api/v1/campaigns/{campaign.pk}/progress").json()
    assert (api["funnel"]["targets"], api["funnel"]["number_known"]) == (20, with_phone)
    assert api["holdout"] == 0


def test_the_supervisor_board_counts_the_people_sent(canaries, calling_day, world, as_user):
    _, target_list, sent = running_campaign(world, count=20)
    assert_planted(canaries, target_list, sent=len(sent))

    board = as_user(world.supervisor).get("/campaigns/board/").text
    funnel = figures(board, "funnel-")
    assert funnel["targets"] + funnel["holdout"] == len(sent) and funnel["holdout"] == 2
    # Every row of the campaign has one reason (or "callable"): they add up to its people.
    assert sum(figures(board, "reason-").values()) == len(sent)


def test_a_canary_in_a_leaked_file_is_not_on_the_insurers_notification_list(
    canaries, world, identities, tmp_path, as_user, settings
):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 0  # the file then holds exactly the persons
    leak = scoped_leak(world, tmp_path)
    canary = Target.objects.get(pk=min(canaries.of_list(leak.list_b)))
    [found] = selectors.canaries_found(leak.incident)  # the file named it: it was matched
    assert (found.target_id, found.leak_row) == (canary.pk, leak.canary_row)

    approval = notification.request_notification_list(
        actor=world.security, incident=leak.incident, insurer=world.insurer_b
    )
    assert approval.subject["target_count"] == len(leak.leaked_b)  # what the approver sees
    approve_confirmed(actor=world.fed_admin, approval=approval)
    data = as_user(world.staff_b).post(f"/exports/{approval.pk}/download/").content
    _, *rows = decrypt_csv(data, identities[world.insurer_b.pk])
    names = [r[0] for r in rows]
    assert sorted(names) == sorted(p.name_kanji for p in leak.leaked_b)
    assert opened(canary)["name_kanji"] not in names
