"""Phone research: one person at a time for a researcher, numbers that make people
callable, "not found", the directory import and the found rate."""

import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import override

from tests.calling.conftest import approve_terms, running_campaign
from tests.conftest import make_user
from tests.custody_helpers import open_row
from tests.pii import LOADED_PEOPLE
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Role
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import research, services
from yobikake.calling.eligibility import Reason, reason
from yobikake.calling.models import CallTarget, ResearchResult
from yobikake.custody.protocol import CustodyUnavailable
from yobikake.intake.models import Target
from yobikake.intake.services import load_target_list
from yobikake.jp import normalize
from yobikake.synth.directory import namesake, synthetic_directory, write_directory
from yobikake.synth.people import synthetic_people
from yobikake.vault import datakeys
from yobikake.vault.blind import IndexKind, blind_index
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Grant, Purpose
from yobikake.vault.reveal import RevealRefused, reveal

FOUND = "058-011-2233"  # synthetic (a local exchange starting with 0 exists nowhere)


def research_ids(campaign):
    return set(
        CallTarget.objects.filter(campaign=campaign, state=CallTarget.State.RESEARCH).values_list(
            "pk", flat=True
        )
    )


def events_text():
    return " ".join(str(row) for row in Event.objects.values_list())


def call_until(operator, call_target_id):
    """Work the operator's queue (declining the others) until `call_target_id` is
    checked out; that checkout."""
    while True:
        checkout = services.next_call(operator=operator)
        if checkout.call_target.pk == call_target_id:
            return checkout
        services.record_outcome(
            actor=operator, call_target_id=checkout.call_target.pk, code="declined"
        )


def test_a_researcher_gets_one_person_without_a_number_at_a_time(calling_day, world):
    campaign, _, _ = running_campaign(world, count=20, seed=3)
    waiting = research_ids(campaign)
    assert len(waiting) >= 2
    task = research.next_research(researcher=world.researcher)
    assert task.call_target.pk in waiting
    assert not Target.objects.get(pk=task.call_target.target_id).has_phone
    again = research.next_research(researcher=world.researcher)
    assert again.call_target.pk == task.call_target.pk
    live = Grant.objects.filter(holder=world.researcher, released_at__isnull=True)
    assert list(live.values_list("pk", flat=True)) == [task.grant.pk]
    colleague = make_user("researcher-2", world.call_centre, Role.RESEARCHER)
    other = research.next_research(researcher=colleague)
    assert other.call_target.pk in waiting - {task.call_target.pk}
    issue = Event.objects.get(tag=AuditTag.GRANT_ISSUE, subject_user_id=world.researcher.pk)
    assert json.loads(issue.details)["call_target_id"] == task.call_target.pk


def test_the_research_queue_runs_dry_and_takes_no_operators(calling_day, world):
    campaign, _, _ = running_campaign(world, count=8, seed=3)
    taken = set()
    for n in range(len(research_ids(campaign))):
        researcher = make_user(f"researcher-{n}", world.call_centre, Role.RESEARCHER)
        taken.add(research.next_research(researcher=researcher).call_target.pk)
    assert taken == research_ids(campaign)
    with pytest.raises(research.NothingToResearch) as nothing:
        research.next_research(researcher=world.researcher)
    assert nothing.value.code == "queue_empty"
    with pytest.raises(NotPermitted):
        research.next_research(researcher=world.operator)


def test_research_reveals_the_checked_out_person_and_no_one_else(calling_day, world):
    running_campaign(world, count=20, seed=3)
    task = research.next_research(researcher=world.researcher)
    shown = reveal(world.researcher, task.call_target.target, Purpose.RESEARCH)
    assert shown["name_kanji"] and shown["name_kana"] and shown["address"]
    assert shown["postal_code"]
    assert "phone" not in shown
    for other in (
        Target.objects.filter(has_phone=False).exclude(pk=task.call_target.target_id).first(),
        Target.objects.filter(has_phone=True).first(),
    ):
        with pytest.raises(RevealRefused) as refused:
            reveal(world.researcher, other, Purpose.RESEARCH)
        assert refused.value.code == "no_grant"


@pytest.mark.parametrize("typed", [FOUND, "０５８（０１１）２２３３", "+81 58-011-2233"])
def test_a_number_found_makes_the_person_callable(key_profile, calling_day, world, typed):
    _campaign, _target_list, _ = running_campaign(world, count=12, seed=3, holdout_share=0)
    task = research.next_research(researcher=world.researcher)
    ct = research.record_research(
        actor=world.researcher, call_target_id=task.call_target.pk, phone=typed
    )
    assert ct.state == CallTarget.State.QUEUED and ct.has_phone
    assert ct.research_result == ResearchResult.FOUND and ct.research_by is None
    target = Target.objects.get(pk=ct.target_id)
    assert target.has_phone
    key = datakeys.index_key(world.insurer_a.pk)
    assert bytes(target.idx_phone) == blind_index(key, IndexKind.PHONE, "0580112233")
    # The kana + phone index, over the kana the researcher's own reveal gave (on the
    # record, under their grant: the application opens nothing itself).
    kana = normalize.kana_key(open_row(target, ["name_kana"])["name_kana"])
    kana_phone = blind_index(key, IndexKind.KANA_PHONE, kana, "0580112233")
    assert bytes(target.idx_kana_phone) == kana_phone
    revealed = Event.objects.get(tag=AuditTag.REVEAL_RESEARCH, outcome=Event.Outcome.ALLOWED)
    assert (revealed.actor_user_id, revealed.target_id) == (world.researcher.pk, target.pk)
    assert Grant.objects.get(pk=task.grant.pk).released_at is not None
    with pytest.raises(RevealRefused):
        reveal(world.researcher, target, Purpose.RESEARCH)
    # The operator gets the person, and their reveal shows the new number.
    checkout = call_until(world.operator, ct.pk)
    assert reveal(world.operator, checkout.call_target.target, Purpose.CALL)["phone"] == FOUND
    event = Event.objects.get(tag=AuditTag.RESEARCH_RESULT)
    assert event.actor_user_id == world.researcher.pk and event.target_id == target.pk
    assert json.loads(event.details) == {"call_targets": f"ids:{ct.pk}", "outcome": "found"}
    assert "0580112233" not in events_text() and FOUND not in events_text()


def test_an_impossible_number_is_refused_in_japanese_and_the_task_stays(calling_day, world):
    running_campaign(world, count=12, seed=3)
    task = research.next_research(researcher=world.researcher)
    with override("ja"), pytest.raises(AccountError) as refused:
        research.record_research(
            actor=world.researcher, call_target_id=task.call_target.pk, phone="058-1"
        )
    assert refused.value.code == "phone_impossible"
    assert str(refused.value) == "存在し得ない電話番号です。"
    ct = CallTarget.objects.get(pk=task.call_target.pk)
    assert ct.state == CallTarget.State.RESEARCH and ct.research_by == world.researcher
    denial = Event.objects.get(tag=AuditTag.RESEARCH_RESULT)
    assert denial.reason == "phone_impossible"
    assert not Event.objects.filter(tag=AuditTag.REVEAL_RESEARCH).exists()  # nothing opened


def test_a_number_is_not_stored_when_the_custodian_cannot_be_reached(
    calling_day, world, monkeypatch
):
    running_campaign(world, count=12, seed=3)
    task = research.next_research(researcher=world.researcher)

    def unreachable(request):
        raise CustodyUnavailable("stopped")

    monkeypatch.setattr(custodian(), "open", unreachable)
    with pytest.raises(RevealRefused) as refused:
        research.record_research(
            actor=world.researcher, call_target_id=task.call_target.pk, phone=FOUND
        )
    assert refused.value.code == "custodian_unavailable"
    ct = CallTarget.objects.get(pk=task.call_target.pk)
    assert ct.state == CallTarget.State.RESEARCH and ct.research_by == world.researcher
    assert not Target.objects.get(pk=ct.target_id).has_phone
    denial = Event.objects.get(tag=AuditTag.REVEAL_RESEARCH, outcome=Event.Outcome.DENIED)
    assert denial.reason == "custodian_unavailable"


def test_not_found_keeps_the_person_out_of_the_queues(calling_day, world):
    campaign, _, _ = running_campaign(world, count=12, seed=3, holdout_share=0)
    task = research.next_research(researcher=world.researcher)
    ct = research.record_research(
        actor=world.researcher, call_target_id=task.call_target.pk, phone=None
    )
    assert ct.state == CallTarget.State.NOT_FOUND
    assert ct.research_result == ResearchResult.NOT_FOUND
    assert reason(ct, timezone.now(), blocked=False) == Reason.NOT_FOUND
    for n in range(len(research_ids(campaign))):
        colleague = make_user(f"researcher-{n}", world.call_centre, Role.RESEARCHER)
        assert research.next_research(researcher=colleague).call_target.pk != ct.pk
    offered = []
    while True:
        try:
            checkout = services.next_call(operator=world.operator)
        except services.NothingToCall:
            break
        offered.append(checkout.call_target.pk)
        services.record_outcome(
            actor=world.operator, call_target_id=checkout.call_target.pk, code="declined"
        )
    assert offered and ct.pk not in offered
    event = Event.objects.get(tag=AuditTag.RESEARCH_RESULT)
    assert json.loads(event.details)["outcome"] == "not_found"


def test_only_the_researcher_holding_the_task_records_it(calling_day, world):
    running_campaign(world, count=12, seed=3)
    task = research.next_research(researcher=world.researcher)
    colleague = make_user("researcher-2", world.call_centre, Role.RESEARCHER)
    with pytest.raises(NotPermitted) as refused:
        research.record_research(actor=colleague, call_target_id=task.call_target.pk, phone=FOUND)
    assert refused.value.code == "not_checked_out"
    assert not Target.objects.get(pk=task.call_target.target_id).has_phone


def test_a_wrong_number_comes_back_to_research(calling_day, world):
    running_campaign(world, count=12, seed=3, holdout_share=0)
    task = research.next_research(researcher=world.researcher)
    research.record_research(
        actor=world.researcher, call_target_id=task.call_target.pk, phone=FOUND
    )
    checkout = call_until(world.operator, task.call_target.pk)
    services.record_outcome(
        actor=world.operator, call_target_id=checkout.call_target.pk, code="wrong_number"
    )
    colleague = make_user("researcher-2", world.call_centre, Role.RESEARCHER)
    assert research.next_research(researcher=colleague).call_target.pk == task.call_target.pk


def directory_world(world, tmp_path, encoding="cp932"):
    """A running campaign of insurer A whose list holds, among people without a phone,
    two namesakes (same name, same address), and a directory naming them, one other
    person twice with two numbers, two people once, three people on no list and one
    row with no valid number. (campaign, the people, the directory's path)."""
    people = synthetic_people(24, seed=11, fiscal_year=2022, phone_share=0.6)
    without = [p for p in people if not p.phone]
    assert len(without) >= 5
    twin = namesake(without[0], seed=1)
    entries = synthetic_directory(people, seed=5, found=4, twice=1, unrelated=3)
    LOADED_PEOPLE.extend([*people, twin, *entries])
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=[*people, twin]
    )
    campaign = services.create_campaign(
        actor=world.supervisor,
        insurer=world.insurer_a,
        fiscal_year=2022,
        lists=[target_list],
        holdout_share=0,
    )
    approve_terms(world, campaign)
    campaign = services.start_campaign(actor=world.supervisor, campaign=campaign, seed=1)
    broken = replace(entries[-1], phone="0")
    path = tmp_path / "directory.csv"
    write_directory(path, [*entries, broken], encoding=encoding)
    return campaign, without, twin, path


def directory_entries(path, encoding="cp932"):
    """A directory file's rows, as (name_kana, phone)."""
    with path.open(encoding=encoding, newline="") as f:
        return [
            SimpleNamespace(name_kana=row["カナ氏名"], phone=row["電話番号"])
            for row in csv.DictReader(f)
        ]


def state_of(campaign, person):
    """The call target of a synthetic person (found by their insured number's index)."""
    key = datakeys.index_key(campaign.insurer_id)
    number = person.insured_number.replace("-", "")
    index = blind_index(key, IndexKind.INSURED_NUMBER, number)
    return CallTarget.objects.get(campaign=campaign, target__idx_insured_number=index)


@pytest.mark.parametrize("encoding", ["cp932", "utf-8"])
def test_the_directory_import_stores_unambiguous_numbers_and_leaves_the_rest(
    calling_day, world, tmp_path, encoding
):
    campaign, without, twin, path = directory_world(world, tmp_path, encoding)
    counts = research.import_directory(actor=world.supervisor, insurer=world.insurer_a, path=path)
    assert counts.as_dict() == {
        "rows": 9,
        "invalid": 1,
        "matched": 5,
        "unmatched": 3,
        "accepted": 2,
        "ambiguous": 3,
        "busy": 0,
    }
    key = datakeys.index_key(world.insurer_a.pk)
    for person in without[1:3]:
        ct = state_of(campaign, person)
        assert ct.state == CallTarget.State.QUEUED and ct.has_phone
        assert ct.research_result == ResearchResult.DIRECTORY
        # The row names them by kana + address too: its kana is theirs, for the kana +
        # phone index (opened by no one).
        [number] = {
            e.phone for e in directory_entries(path, encoding) if e.name_kana == person.name_kana
        }
        kana, phone = normalize.kana_key(person.name_kana), normalize.phone_key(number)
        target = Target.objects.get(pk=ct.target_id)
        assert bytes(target.idx_kana_phone) == blind_index(key, IndexKind.KANA_PHONE, kana, phone)
    assert not Event.objects.filter(tag__startswith="target:reveal").exists()
    for person, candidates in ((without[0], 1), (twin, 1), (without[3], 2)):
        ct = state_of(campaign, person)
        assert ct.state == CallTarget.State.RESEARCH and not ct.has_phone
        assert ct.directory_candidates == candidates
    assert state_of(campaign, without[4]).directory_candidates == 0
    results = Event.objects.filter(tag=AuditTag.RESEARCH_RESULT)
    assert results.count() == 2
    assert {json.loads(e.details)["outcome"] for e in results} == {"directory"}
    summary = Event.objects.get(tag=AuditTag.DIRECTORY_IMPORT)
    assert summary.actor_user_id == world.supervisor.pk
    assert json.loads(summary.details) == counts.as_dict()


def test_a_directory_without_kana_gives_numbers_without_a_kana_phone_index(
    calling_day, world, tmp_path
):
    """The kana + phone index needs the person's kana, which the application cannot open:
    a directory row without it gives the number, and the index stays empty."""
    campaign, without, _twin, path = directory_world(world, tmp_path)
    rows = list(csv.reader(path.read_text(encoding="cp932").splitlines()))
    kana = rows[0].index("カナ氏名")
    path.write_text(
        "\n".join(",".join(r[:kana] + r[kana + 1 :]) for r in rows) + "\n", encoding="cp932"
    )
    counts = research.import_directory(actor=world.supervisor, insurer=world.insurer_a, path=path)
    assert counts.accepted == 2
    for person in without[1:3]:
        ct = state_of(campaign, person)
        assert ct.state == CallTarget.State.QUEUED
        target = Target.objects.get(pk=ct.target_id)
        assert target.idx_phone is not None and target.idx_kana_phone is None


def test_a_directory_matches_only_the_insurers_own_running_campaigns(calling_day, world, tmp_path):
    """Imported for insurer B, a directory naming A's people waiting for research
    matches none of them; imported for A, it matches each."""
    campaign, _list, people = running_campaign(world, count=24, seed=12, holdout_share=0)
    entries = synthetic_directory(people, seed=6, found=3, unrelated=0)
    LOADED_PEOPLE.extend(entries)
    path = tmp_path / "directory.csv"
    write_directory(path, entries)
    from_directory = CallTarget.objects.filter(
        campaign=campaign, research_result=ResearchResult.DIRECTORY
    )
    counts = research.import_directory(actor=world.supervisor, insurer=world.insurer_b, path=path)
    assert (counts.matched, counts.accepted) == (0, 0)
    assert not from_directory.exists()
    event = Event.objects.get(tag=AuditTag.DIRECTORY_IMPORT)
    assert (event.insurer_id, event.actor_user_id) == (world.insurer_b.pk, world.supervisor.pk)
    assert json.loads(event.details) == counts.as_dict()
    counts = research.import_directory(actor=world.supervisor, insurer=world.insurer_a, path=path)
    assert (counts.matched, counts.accepted) == (3, 3)
    assert from_directory.count() == 3


def test_the_directory_import_leaves_a_person_being_researched_to_their_researcher(
    calling_day, world, tmp_path
):
    campaign, without, _twin, path = directory_world(world, tmp_path)
    held = state_of(campaign, without[1])
    CallTarget.objects.filter(pk__lt=held.pk, state=CallTarget.State.RESEARCH).update(
        state=CallTarget.State.NOT_FOUND
    )
    task = research.next_research(researcher=world.researcher)
    assert task.call_target.pk == held.pk
    counts = research.import_directory(actor=world.supervisor, insurer=world.insurer_a, path=path)
    assert (counts.accepted, counts.busy) == (1, 1)
    held.refresh_from_db()
    assert held.state == CallTarget.State.RESEARCH and held.directory_candidates == 1
    research.record_research(actor=world.researcher, call_target_id=held.pk, phone=FOUND)


def test_only_supervisors_import_directories(calling_day, world, tmp_path):
    _campaign, _without, _twin, path = directory_world(world, tmp_path)
    for user in (world.operator, world.researcher, world.staff_a):
        with pytest.raises(NotPermitted):
            research.import_directory(actor=user, insurer=world.insurer_a, path=path)
    denials = Event.objects.filter(tag=AuditTag.DIRECTORY_IMPORT, outcome=Event.Outcome.DENIED)
    assert denials.count() == 3
    assert not CallTarget.objects.filter(research_result=ResearchResult.DIRECTORY).exists()


def test_a_directory_without_its_columns_is_refused(calling_day, world, tmp_path):
    path = tmp_path / "directory.csv"
    path.write_text("氏名,電話番号\nx,058-011-2233\n", encoding="utf-8")
    with pytest.raises(AccountError) as refused:
        research.import_directory(actor=world.supervisor, insurer=world.insurer_a, path=path)
    assert refused.value.code == "directory_columns"


def test_the_command_imports_a_directory(calling_day, world, tmp_path, capsys):
    _campaign, _without, _twin, path = directory_world(world, tmp_path)
    call_command(
        "calling", "import-directory", str(path), "--insurer", world.insurer_a.number, "--json"
    )
    assert json.loads(capsys.readouterr().out)["accepted"] == 2
    assert Event.objects.get(tag=AuditTag.DIRECTORY_IMPORT).actor_user_id is None


def test_the_found_rate_per_list(calling_day, world):
    campaign, target_list, _ = running_campaign(world, count=20, seed=3, holdout_share=0)
    waiting = len(research_ids(campaign))
    assert waiting >= 3
    outcomes = [FOUND, None, "058-011-2234"]
    for n, phone in enumerate(outcomes):
        researcher = make_user(f"researcher-{n}", world.call_centre, Role.RESEARCHER)
        task = research.next_research(researcher=researcher)
        research.record_research(actor=researcher, call_target_id=task.call_target.pk, phone=phone)
    [rate] = research.research_rates(campaign)
    assert rate.target_list_id == target_list.pk
    assert (rate.to_research, rate.found, rate.not_found, rate.open) == (
        waiting,
        2,
        1,
        waiting - 3,
    )
    assert rate.percent == 67


def test_the_researcher_works_the_screen(calling_day, world, as_user):
    running_campaign(world, count=12, seed=3, holdout_share=0)
    client = as_user(world.researcher)
    page = client.get(reverse("calling:research"))
    assert 'data-testid="next-task"' in page.text and 'data-testid="name"' not in page.text
    assert client.post(reverse("calling:research_next")).status_code == 302
    ct = research.current_research(world.researcher)
    CallTarget.objects.filter(pk=ct.pk).update(directory_candidates=2)
    page = client.get(reverse("calling:research"))
    shown = reveal(world.researcher, ct.target, Purpose.RESEARCH)
    for value in (shown["name_kanji"], shown["name_kana"], shown["address"]):
        assert value in page.text
    assert "電話帳にこの氏名・住所の番号が2件あります" in page.text
    url = reverse("calling:research_record", args=[ct.pk])
    client.post(url, {"phone": "12", "result": "found"})
    assert CallTarget.objects.get(pk=ct.pk).state == CallTarget.State.RESEARCH
    client.post(url, {"phone": FOUND, "result": "found"})
    assert CallTarget.objects.get(pk=ct.pk).state == CallTarget.State.QUEUED
    client.post(reverse("calling:research_next"))
    other = research.current_research(world.researcher)
    client.post(reverse("calling:research_record", args=[other.pk]), {"result": "not_found"})
    assert CallTarget.objects.get(pk=other.pk).state == CallTarget.State.NOT_FOUND


@pytest.mark.parametrize("role", ["staff_a", "operator", "supervisor", "sysadmin"])
def test_no_one_else_uses_the_research_screen(calling_day, world, as_user, role):
    running_campaign(world, count=12, seed=3)
    client = as_user(getattr(world, role))
    assert client.get(reverse("calling:research")).status_code == 403
    assert client.post(reverse("calling:research_next")).status_code == 403
    assert not Grant.objects.filter(purpose=Purpose.RESEARCH).exists()


def test_a_supervisor_uploads_a_directory(calling_day, world, as_user, tmp_path):
    _campaign, _without, _twin, path = directory_world(world, tmp_path)
    client = as_user(world.supervisor)
    with path.open("rb") as f:
        page = client.post(
            reverse("calling:research_directory"), {"insurer": world.insurer_a.pk, "file": f}
        )
    assert page.status_code == 200
    assert 'data-testid="count-accepted">2<' in page.text
    assert 'data-testid="research-rates"' in page.text
    assert list((Path(settings.YOBIKAKE_HOME) / "uploads").iterdir()) == []  # nothing kept


@pytest.mark.parametrize("role", ["staff_a", "operator", "researcher"])
def test_no_one_else_imports_a_directory(calling_day, world, as_user, role):
    assert (
        as_user(getattr(world, role)).get(reverse("calling:research_directory")).status_code == 403
    )
