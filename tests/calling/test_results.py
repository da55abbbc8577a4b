"""Insurers' checkup results: matched by blind index to their campaigns' call targets;
only the day taken is kept; another insurer's staff are refused on the record."""

import csv
import json
from datetime import date

import pytest

from tests.calling.conftest import running_campaign
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget
from yobikake.calling.results import record_checkup_results

IN_YEAR, NEXT_YEAR = date(2022, 11, 2), date(2023, 6, 1)  # the campaign's is FY2022


def write_results(path, rows):
    with path.open("w", encoding="cp932", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["被保険者番号", "カナ氏名", "生年月日", "受診日"])
        writer.writerows(rows)
    return path


def by_insured_number(person, day):
    return [person.insured_number, "", "", day.isoformat()]


def by_kana_and_birth(person, day):
    return [
        "",
        person.name_kana,
        person.birth_date.strftime("%Y/%m/%d"),
        f"令和4年{day.month}月{day.day}日",
    ]


def test_results_are_matched_by_insured_number_or_kana_and_birth_and_only_the_day_kept(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    dated = [p for p in people if p.birth_date is not None]
    first, second, third = dated[0], dated[1], dated[2]
    path = write_results(
        tmp_path / "results.csv",
        [
            by_insured_number(first, IN_YEAR),
            by_kana_and_birth(second, IN_YEAR),
            by_insured_number(third, NEXT_YEAR),  # the next fiscal year: not this campaign's
            ["99-999999", "", "", IN_YEAR.isoformat()],  # nobody of the insurer's
            [first.insured_number, "", "", "not a day"],
            ["", "", "", IN_YEAR.isoformat()],
        ],
    )
    summary = record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert (summary.rows, summary.matched, summary.outside_year) == (6, 2, 1)
    assert (summary.unmatched, summary.invalid) == (1, 2)
    attended = CallTarget.objects.filter(campaign=campaign, attended_on__isnull=False)
    assert sorted(attended.values_list("attended_on", flat=True)) == [IN_YEAR, IN_YEAR]
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT, outcome=Event.Outcome.ALLOWED)
    assert event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details) == {
        "rows": 6, "matched": 2, "outside_year": 1, "unmatched": 1, "invalid": 2,
        "call_targets": 2,
    }  # fmt: skip


def test_another_insurers_staff_cannot_upload_results_for_it(calling_day, world, tmp_path):
    _, _, people = running_campaign(world, count=4, seed=6)
    path = write_results(tmp_path / "r.csv", [by_insured_number(people[0], IN_YEAR)])
    with pytest.raises(NotPermitted):
        record_checkup_results(actor=world.staff_b, insurer=world.insurer_a, path=path)
    assert not CallTarget.objects.filter(attended_on__isnull=False).exists()
    denied = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert denied.outcome == Event.Outcome.DENIED and denied.reason == "not_yours"


def test_a_file_without_a_day_taken_column_is_refused_whole(calling_day, world, tmp_path):
    _, _, people = running_campaign(world, count=4, seed=7)
    path = tmp_path / "r.csv"
    path.write_text(f"被保険者番号\n{people[0].insured_number}\n", encoding="utf-8")
    with pytest.raises(AccountError) as refused:
        record_checkup_results(actor=world.staff_a, insurer=world.insurer_a, path=path)
    assert refused.value.code == "columns"
    assert Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT).reason == "columns"


def test_a_row_whose_insured_number_and_kana_name_two_people_marks_only_the_first(
    calling_day, world, tmp_path
):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    first, second = [p for p in people if p.birth_date is not None][:2]
    mixed = [first.insured_number, second.name_kana, second.birth_date.strftime("%Y/%m/%d"),
             IN_YEAR.isoformat()]  # fmt: skip
    record_checkup_results(
        actor=world.staff_a,
        insurer=world.insurer_a,
        path=write_results(tmp_path / "results.csv", [mixed]),
    )
    assert CallTarget.objects.filter(campaign=campaign).exclude(attended_on=None).count() == 1
