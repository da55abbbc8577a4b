"""The security officer's incident screens: a leaked file uploaded, scoped in the
background and shown — the affected persons per insurer × fiscal year, the tiers, the
canaries, the deadlines — and the regulator report draft. Nobody else sees any of it."""

import io
import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from tests.incidents.leaks import scoped_leak
from tests.incidents.test_scoping import retyped, write_csv
from tests.pii import LOADED_PEOPLE
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.incidents import services, views
from yobikake.incidents.models import Incident
from yobikake.intake.services import load_target_list
from yobikake.synth.people import synthetic_people


def events(tag):
    return list(Event.objects.filter(tag=tag).order_by("seq"))


def test_the_officer_sees_the_table_tiers_canaries_and_deadlines(
    world, as_user, tmp_path, canaries
):
    leak = scoped_leak(world, tmp_path)
    incident = leak.incident
    page = as_user(world.security).get(f"/incidents/{incident.pk}/")
    assert page.status_code == 200
    context = page.context
    assert [fy.year for fy in context["years"]] == [2021, 2022]
    rows = {
        ins.pk: (counts, entries, people) for ins, counts, entries, people, _ in context["rows"]
    }
    assert rows == {
        world.insurer_a.pk: ([len(leak.both_years), 8], len(leak.both_years) + 8, 8),
        world.insurer_b.pk: ([None, 4], 4, 4),
    }
    assert context["table"].totals == [len(leak.both_years), 12]
    assert "令和3年度" in page.text and "FY2021" in page.text and "令和4年度" in page.text
    assert world.insurer_a.number in page.text and world.insurer_b.name in page.text
    assert dict((key, n) for _, n, key in context["tiers"])["certain"] == incident.people == 12
    assert incident.persons == len(leak.both_years) + 12
    [canary] = context["canaries"]
    assert (canary.insurer, canary.fiscal_year.year, canary.leak_row) == (
        world.insurer_b, 2022, leak.canary_row
    )  # fmt: skip
    deadlines = context["deadlines"]
    assert deadlines["dates"].final_by == incident.aware_on + timedelta(days=60)
    expected = (incident.aware_on + timedelta(days=60) - timezone.localdate()).days
    assert deadlines["final"] == {"left": max(expected, 0), "overdue": max(-expected, 0)}
    assert 'data-testid="deadline-preliminary"' in page.text
    assert "hx-get" not in page.text  # scoped: nothing left to poll


def figure(html, testid):
    found = re.search(rf'data-testid="{testid}">([\d,]+)<', html)
    assert found, testid
    return int(found.group(1).replace(",", ""))


def test_persons_and_list_entries_are_two_labelled_figures_everywhere(
    world, as_user, tmp_path, canaries, capsys
):
    """A person on the lists of two fiscal years is one person and two list entries: the
    list of incidents, the incident's page, the report draft and the command line give
    both, each under its own name."""
    leak = scoped_leak(world, tmp_path)
    incident = leak.incident
    people, entries = 12, len(leak.both_years) + 12
    assert leak.both_years and (incident.people, incident.persons) == (people, entries)
    client = as_user(world.security)

    listing = client.get("/incidents/").text
    assert "<th>特定した本人</th><th>名簿上の該当件数</th>" in listing
    assert figure(listing, f"people-{incident.pk}") == people
    assert figure(listing, f"entries-{incident.pk}") == entries

    page = client.get(f"/incidents/{incident.pk}/").text
    assert (figure(page, "people"), figure(page, "persons")) == (people, entries)
    assert "<th>名簿上の件数</th><th>本人数</th>" in page
    assert (figure(page, "grand-total"), figure(page, "people-total")) == (entries, people)

    report = client.get(f"/incidents/{incident.pk}/report/").text
    assert f"{people} 人（名簿上は {entries} 件）が該当しました" in report
    assert f"{people} 人（確実または可能性高で該当。名簿上は {entries} 件" in report
    assert (figure(report, "grand-total"), figure(report, "people-total")) == (entries, people)

    call_command("incident", "scope", str(leak.path))
    text = " ".join(capsys.readouterr().out.split())  # as rich wrapped it, unwrapped
    assert f"persons named: {people}; list entries named: {entries}" in text
    assert "List entries" in text and "Persons" in text
    out = io.StringIO()
    call_command("incident", "scope", str(leak.path), "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert (summary["people"], summary["list_entries"]) == (people, entries)
    by_insurer = {row["number"]: (row["list_entries"], row["people"]) for row in summary["table"]}
    assert by_insurer[world.insurer_a.number] == (len(leak.both_years) + 8, 8)


def test_the_report_draft_prefills_every_item_the_rules_require(world, as_user, tmp_path, canaries):
    leak = scoped_leak(world, tmp_path)
    incident = leak.incident
    page = as_user(world.security).get(f"/incidents/{incident.pk}/report/")
    assert page.status_code == 200
    numbers = [number for number, *_ in page.context["report_items"]]
    assert numbers == list(range(1, 10))
    for number in numbers:
        assert f'data-testid="report-item-{number}"' in page.text
    assert page.context["items"] == ["氏名", "氏名（カナ）", "生年月日", "電話番号", "住所"]
    assert f"{incident.persons}" in page.text and "令和3年度" in page.text
    assert 'data-testid="report-canaries"' in page.text and world.insurer_b.name in page.text
    assert page.context["insurers_affected"] == 2
    final = (incident.aware_on + timedelta(days=60)).isoformat()
    assert final in page.text
    assert "report.css" in page.text  # the print layout


def test_the_officer_writes_the_free_text_items_with_one_event(world, as_user, tmp_path):
    incident = services.open_incident(actor=None, title="t", aware_on=date(2026, 11, 20))
    client = as_user(world.security)
    texts = {"cause": "保守作業員による持ち出し", "prevention": "二人承認の徹底"}
    response = client.post(f"/incidents/{incident.pk}/report/edit/", texts)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.report["cause"] == texts["cause"]
    assert incident.report["prevention"] == texts["prevention"]
    [event] = events(AuditTag.INCIDENT_REPORT)
    details = json.loads(event.details)
    assert details["incident_id"] == incident.pk and details["items_changed"] == 2
    assert texts["cause"] not in event.details
    page = client.get(f"/incidents/{incident.pk}/report/")
    assert texts["cause"] in page.text


def test_a_leaked_file_uploaded_is_sealed_scoped_in_the_background_and_shown(
    world, as_user, tmp_path, settings
):
    people = synthetic_people(12, seed=21, fiscal_year=2022)
    LOADED_PEOPLE.extend(people)
    load_target_list(actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people)
    path = write_csv(tmp_path, [retyped(p) for p in people if p.phone][:5])
    client = as_user(world.security)
    form = client.get("/incidents/new/")
    assert form.context["form"]["aware_on"].initial == timezone.localdate()
    assert form.context["form"]["malicious"].initial is True
    response = client.post(
        "/incidents/new/",
        {
            "title": "名簿業者の掲載リスト",
            "aware_on": "2026-11-20",
            "malicious": "on",
            "file": SimpleUploadedFile("leak.csv", path.read_bytes()),
        },
    )
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}/"
    # The task ran at once (the tests' backend): scoped, and the sealed copy is gone.
    assert incident.state == Incident.State.SCOPED
    assert (incident.rows, incident.persons, incident.malicious) == (5, 5, True)
    assert incident.created_by == world.security and incident.file_name == "leak.csv"
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))
    [opened] = events(AuditTag.INCIDENT_OPEN)
    assert json.loads(opened.details)["source"] == "web"
    page = client.get(response["Location"])
    assert page.context["table"].entries == 5
    assert "名簿業者の掲載リスト" in client.get("/incidents/").text


def test_a_file_scoping_cannot_read_shows_why(world, as_user, tmp_path):
    path = write_csv(tmp_path, [["1", "2"], ["3", "4"]], headers=["a", "b"], encoding="utf-8")
    client = as_user(world.security)
    upload = SimpleUploadedFile("x.csv", path.read_bytes())
    client.post("/incidents/new/", {"title": "x", "aware_on": "2026-11-20", "file": upload})
    incident = Incident.objects.get()
    assert incident.state == Incident.State.FAILED and incident.malicious is False
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.context["error"] == views.ERRORS["no_person_columns"]
    assert str(page.context["error"]) in page.text


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(world, as_user, settings):
    settings.YOBIKAKE_UPLOAD_MAX_MB = 0
    upload = SimpleUploadedFile("x.csv", b"a,b\n1,2\n")
    response = as_user(world.security).post(
        "/incidents/new/", {"title": "x", "aware_on": "2026-11-20", "file": upload}
    )
    assert response.status_code == 200 and response.context["form"].errors["file"]
    assert not Incident.objects.exists()
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))


def test_a_refused_form_leaves_no_sealed_copy_behind(world, as_user, settings):
    upload = SimpleUploadedFile("x.csv", b"a,b\n1,2\n")
    response = as_user(world.security).post(
        "/incidents/new/", {"title": "", "aware_on": "2026-11-20", "file": upload}
    )
    assert response.status_code == 200 and response.context["form"].errors["title"]
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))


def test_the_status_polls_while_the_scoping_runs(world, as_user):
    incident = services.open_incident(actor=world.security, title="t", aware_on=date(2026, 11, 20))
    status = as_user(world.security).get(f"/incidents/{incident.pk}/status/")
    assert f'hx-get="/incidents/{incident.pk}/status/"' in status.text
    assert 'data-state="queued"' in status.text


PAGES = [
    ("get", "/incidents/"),
    ("get", "/incidents/new/"),
    ("get", "/incidents/{id}/"),
    ("get", "/incidents/{id}/status/"),
    ("get", "/incidents/{id}/report/"),
    ("get", "/incidents/{id}/report/edit/"),
    ("post", "/incidents/{id}/notification/{insurer}/"),
]


@pytest.mark.parametrize("role", ["operator", "staff_a", "sysadmin", "fed_admin", "supervisor"])
def test_nobody_but_the_security_officer_sees_incidents_and_each_refusal_is_recorded(
    world, as_user, role
):
    incident = services.open_incident(actor=None, title="流出名簿X", aware_on=date(2026, 11, 20))
    user = getattr(world, role)
    client = as_user(user)
    for method, url in PAGES:
        url = url.format(id=incident.pk, insurer=world.insurer_a.pk)
        response = getattr(client, method)(url)
        assert response.status_code == 403, url
        assert incident.title not in response.text
    denials = Event.objects.filter(tag=AuditTag.PERMISSION_DENY, actor_user_id=user.pk)
    assert denials.count() == len(PAGES)
    assert {d.reason for d in denials} == {"missing:incident:any:manage"}


def test_a_missing_incident_is_404_and_the_probe_recorded(world, as_user):
    client = as_user(world.security)
    for url in ("/incidents/9999/", "/incidents/9999/report/", "/incidents/9999/status/"):
        assert client.get(url).status_code == 404
    denials = events(AuditTag.INCIDENT_DENY)
    assert len(denials) == 3 and {d.reason for d in denials} == {"missing"}


def test_the_menu_leads_the_security_officer_to_incidents(world, as_user):
    nav = as_user(world.security).get("/").context["nav"]
    assert "/incidents/" in [item.url for item in nav]
