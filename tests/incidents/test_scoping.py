"""Leak scoping: a leaked file in any layout names the stored people it holds — through
blind indexes only — per insurer and fiscal year, with canaries traced to their list."""

import csv
import io
import json

import jaconv
import pytest
from django.core.management import call_command
from openpyxl import Workbook

from tests.conftest import load_people
from tests.custody_helpers import open_row
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.incidents import selectors, services
from yobikake.incidents.models import Incident
from yobikake.intake.models import Target

HEADERS = ["お名前", "ﾌﾘｶﾞﾅ", "生年月日", "TEL", "住所"]


def retyped(person, *, typo=None):
    """A person as a broker's file might hold them: other widths, hiragana, no spaces,
    other phone punctuation, a slashed date — and, with `typo`, one character wrong."""
    name = person.name_kanji.replace(" ", "")
    kana = jaconv.z2h(jaconv.kata2hira(person.name_kana), kana=False).replace(" ", "　")
    phone = person.phone.replace("-", "")
    born = person.birth_date
    birth = f"{born.year}/{born.month}/{born.day}"
    address = jaconv.h2z(person.address, digit=True)
    if typo == "kana":
        kana = kana[:-1] + ("あ" if kana[-1] != "あ" else "い")
    if typo == "birth":
        birth = f"{born.year + 1}/{born.month}/{born.day}"
    return [name, kana, birth, phone, address]


def write_csv(tmp_path, rows, headers=HEADERS, encoding="cp932", name="leak.csv"):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if headers:
        writer.writerow(headers)
    writer.writerows(rows)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def scope(path, **kwargs):
    incident = services.open_incident(
        actor=None, title="test", aware_on=kwargs.pop("aware_on", None) or _today(), **kwargs
    )
    return services.run_scoping(incident, path)


def _today():
    from datetime import date

    return date(2026, 11, 26)


def opened(target):
    """A stored person's fields, opened by the tests' custodian."""
    return open_row(target)


@pytest.mark.usefixtures("key_profile")
def test_retyped_rows_name_their_people_per_insurer_and_year(world, tmp_path):
    _target_list, people = load_people(world, count=40)
    with_phone = [p for p in people if p.phone][:10]
    path = write_csv(tmp_path, [retyped(p) for p in with_phone])
    incident = scope(path)

    assert incident.state == Incident.State.SCOPED, incident.error_message
    assert (incident.rows, incident.unmatched) == (10, 0)
    assert incident.tiers["certain"] == 10
    assert set(incident.items) == {"name", "kana", "birth", "phone", "address"}
    table = selectors.table(incident)
    assert table.years == [2022] and (table.entries, table.people) == (10, 10)
    assert [(ins.pk, counts) for ins, counts, *_ in table.rows] == [(world.insurer_a.pk, [10])]
    named = set(incident.matches.values_list("target_id", flat=True))
    stored = {(p.name_kana, p.birth_date.isoformat()): p for p in people}
    for target in Target.objects.filter(pk__in=named):
        values = opened(target)
        assert stored[(values["name_kana"], values["birth_date"])] in with_phone
    event = Event.objects.get(tag=AuditTag.INCIDENT_SCOPE)
    assert json.loads(event.details)["persons"] == 10


def test_a_typo_in_one_field_still_names_the_person(world, tmp_path):
    _, people = load_people(world, count=20)
    chosen = [p for p in people if p.phone][:4]
    rows = [retyped(chosen[0], typo="kana"), retyped(chosen[1], typo="birth")]
    incident = scope(write_csv(tmp_path, rows))
    assert incident.unmatched == 0
    assert incident.persons == 2


def test_strangers_match_no_one_and_a_household_phone_is_only_possible(world, tmp_path):
    _, people = load_people(world, count=20)
    person = next(p for p in people if p.phone)
    stranger = [
        "見知 らぬ",
        "ミシラ ヌ",
        "1960/1/1",
        "090-0000-0001",
        "岐阜県テスト市本町1丁目1番1号",
    ]
    relative = ["別名 太郎", "ベツメイ タロウ", "1961/2/2", person.phone, "岐阜県どこか町1-1"]
    incident = scope(write_csv(tmp_path, [stranger, relative]))
    assert incident.unmatched == 1
    assert incident.tiers == {"certain": 0, "probable": 0, "possible": 1}
    assert incident.persons == 0  # a shared landline names a household, not a person


def test_headerless_and_xlsx_files_with_unknown_headers_are_read_by_content(world, tmp_path):
    _, people = load_people(world, count=12)
    rows = [retyped(p) for p in people if p.phone][:5]
    headerless = scope(write_csv(tmp_path, rows, headers=None, encoding="utf-8"))
    assert (headerless.rows, headerless.unmatched) == (5, 0)

    book = Workbook()
    sheet = book.active
    sheet.append(["列A", "列B", "列C", "列D", "列E"])
    for row in rows:
        sheet.append([row[3], row[0], row[4], row[1], row[2]])  # another order
    book.save(tmp_path / "leak.xlsx")
    xlsx = scope(tmp_path / "leak.xlsx")
    assert (xlsx.rows, xlsx.unmatched, xlsx.persons) == (5, 0, 5)


def test_a_file_without_person_columns_fails_clearly_and_keeps_nothing(world, tmp_path):
    path = write_csv(tmp_path, [["1", "2"], ["3", "4"]], headers=["a", "b"], encoding="utf-8")
    incident = scope(path)
    assert incident.state == Incident.State.FAILED
    assert incident.error_code == "no_person_columns"
    assert not incident.matches.exists()
    assert Event.objects.get(tag=AuditTag.INCIDENT_SCOPE).outcome == Event.Outcome.DENIED


def test_a_canary_in_the_file_names_its_list_and_raises_a_critical_alert(world, tmp_path, canaries):
    target_list, people = load_people(world, count=15)
    canary = Target.objects.get(pk=min(canaries.of_list(target_list)))
    values = opened(canary)
    row = [values["name_kanji"], values["name_kana"], values["birth_date"].replace("-", "/"),
           values["phone"], values["address"]]  # fmt: skip
    incident = scope(write_csv(tmp_path, [retyped(people[0]), row]))
    found = selectors.canaries_found(incident)
    assert [(m.target_list_id, m.leak_row) for m in found] == [(target_list.pk, 3)]
    assert incident.persons == 1  # the canary is no one
    assert Alert.objects.get(rule="canary_touched").severity == Alert.Severity.CRITICAL


def test_deadlines_run_from_awareness_longer_for_a_wrongful_act(world):
    from datetime import date

    incident = services.open_incident(actor=None, title="t", aware_on=date(2026, 11, 2))
    d = selectors.deadlines(incident)
    assert (d.preliminary_from, d.preliminary_by, d.final_by) == (
        date(2026, 11, 5), date(2026, 11, 7), date(2027, 1, 1)
    )  # fmt: skip
    incident.malicious = False
    assert selectors.deadlines(incident).final_by == date(2026, 12, 2)


def test_the_command_prints_json_and_writes_its_tables(world, tmp_path):
    _, people = load_people(world, count=10)
    path = write_csv(tmp_path, [retyped(p) for p in people if p.phone][:3])
    out = io.StringIO()
    call_command(
        "incident", "scope", str(path), "--json", "--out", str(tmp_path / "out"), stdout=out
    )
    summary = json.loads(out.getvalue())
    assert summary["people"] == 3 and summary["list_entries"] == 3
    assert (tmp_path / "out" / "table.csv").read_text(encoding="utf-8-sig").count("\n") == 3
    assert (tmp_path / "out" / "matches.csv").read_text().count("\n") == 4


def test_a_person_on_two_years_lists_is_one_person_and_two_records(world, tmp_path):
    from yobikake.intake.services import load_target_list

    _, people = load_people(world, count=6, seed=5, fiscal_year=2021)
    load_target_list(  # the same people on the next year's list
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people
    )
    person = next(p for p in people if p.phone)
    incident = scope(write_csv(tmp_path, [retyped(person)]))
    assert (incident.people, incident.persons) == (1, 2)
    assert selectors.table(incident).totals == [1, 1]
    assert json.loads(Event.objects.get(tag=AuditTag.INCIDENT_SCOPE).details)["people"] == 1


def test_the_kanji_name_and_its_kana_are_one_field_in_the_tiers(world, tmp_path):
    _, people = load_people(world, count=6)
    person = people[0]
    name, kana, birth, _phone, _address = retyped(person)
    incident = scope(write_csv(tmp_path, [[name, kana, birth]], headers=HEADERS[:3]))
    # Name, kana and birth date agree: the name and one other field — probable.
    assert incident.tiers == {"certain": 0, "probable": 1, "possible": 0}


def test_matches_scoped_before_persons_were_numbered_get_the_numbers_scoping_gives(world, tmp_path):
    import importlib

    from django.apps import apps

    from yobikake.incidents.models import Match

    migration = importlib.import_module("yobikake.incidents.migrations.0004_match_person")
    _, people = load_people(world, count=8, seed=5, fiscal_year=2021)
    load_people(world, count=8, seed=5, fiscal_year=2022)  # the same people a year on
    incident = scope(write_csv(tmp_path, [retyped(p) for p in people if p.phone][:4]))
    scoped = dict(Match.objects.values_list("pk", "person"))
    Match.objects.update(person=0)
    migration.number_persons(apps, None)
    numbered = dict(Match.objects.values_list("pk", "person"))

    def partition(numbers):
        groups = {}
        for pk, number in numbers.items():
            groups.setdefault(number, set()).add(pk)
        return sorted(map(sorted, groups.values()))

    assert partition(numbered) == partition(scoped)
    assert len(set(numbered.values())) == incident.people == 4
