"""A scoped incident to start from: a leaked file naming stored people of insurer A (some
on both its FY2021 and FY2022 lists) and of insurer B, and one of B's canaries. Every
person is synthetic; the file is written in the test's own directory."""

from dataclasses import dataclass
from pathlib import Path

from tests.incidents.test_scoping import opened, retyped, scope, write_csv
from tests.pii import LOADED_PEOPLE
from yobikake.incidents import canaries
from yobikake.incidents.models import Incident
from yobikake.intake.models import Target, TargetList
from yobikake.intake.services import load_target_list
from yobikake.synth.people import Person, synthetic_people


@dataclass
class Leak:
    incident: Incident
    leaked_a: list[Person]  # on A's FY2022 list; those in `both_years` on FY2021's too
    both_years: list[Person]
    leaked_b: list[Person]  # on B's FY2022 list
    list_b: TargetList
    canary_row: int | None  # the leaked row holding B's canary, if planted
    path: Path  # the leaked file


def load(world, insurer, staff, fiscal_year, people) -> TargetList:
    LOADED_PEOPLE.extend(people)
    return load_target_list(actor=staff, insurer=insurer, fiscal_year=fiscal_year, people=people)


def scoped_leak(world, tmp_path) -> Leak:
    """The incident scoped (on the test's settings: with the `canaries` fixture, B's
    list has canaries and one of them is in the file)."""
    people_a = synthetic_people(16, seed=11, fiscal_year=2022)
    people_b = synthetic_people(10, seed=12, fiscal_year=2022, city="岐阜県テスト町")
    load(world, world.insurer_a, world.staff_a, 2022, people_a)
    load(world, world.insurer_a, world.staff_a, 2021, people_a[:6])
    list_b = load(world, world.insurer_b, world.staff_b, 2022, people_b)
    leaked_a = [p for p in people_a if p.phone][:8]
    leaked_b = [p for p in people_b if p.phone][:4]
    rows = [retyped(p) for p in leaked_a + leaked_b]
    canary_row = None
    planted = canaries.of_list(list_b)
    if planted:
        values = opened(Target.objects.get(pk=min(planted)))
        born = values["birth_date"].replace("-", "/")
        rows.append([values["name_kanji"], values["name_kana"], born, values["phone"],
                     values["address"]])  # fmt: skip
        canary_row = len(rows) + 1  # the header is row 1
    path = write_csv(tmp_path, rows)
    incident = scope(path)
    assert incident.state == Incident.State.SCOPED, incident.error_message
    return Leak(
        incident=incident,
        leaked_a=leaked_a,
        both_years=[p for p in leaked_a if p in people_a[:6]],
        leaked_b=leaked_b,
        list_b=list_b,
        canary_row=canary_row,
        path=path,
    )
