"""The inquiry desk: a caller who states their kana name with their date of birth or phone
number hears whether a leak included them — the incidents, and in each the insurers,
fiscal years and items — or that none did; nothing else, on the record, within an
hourly budget. Every incident is searched: no answer depends on which one is newest."""

import json
from datetime import date

import jaconv
import pytest

from tests.conftest import make_user
from tests.incidents.test_scoping import opened, retyped, scope, write_csv
from tests.pii import LOADED_PEOPLE
from yobikake.accounts import services as accounts
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.models import RoleAssignment
from yobikake.accounts.permissions import Role
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.incidents import inquiry, services
from yobikake.incidents.models import Match
from yobikake.intake.models import Target
from yobikake.intake.services import load_target_list
from yobikake.jp.wareki import era_of
from yobikake.synth.people import synthetic_people
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.vault.services import shred_list

NOT_FOUND = "漏えいが確認された情報には含まれていません"


def load(world, people, *, insurer="a", fiscal_year=2022):
    """`people` stored as insurer A's (or B's) list for `fiscal_year`."""
    LOADED_PEOPLE.extend(p for p in people if p not in LOADED_PEOPLE)
    staff = world.staff_a if insurer == "a" else world.staff_b
    return load_target_list(
        actor=staff, insurer=staff.organization.insurer, fiscal_year=fiscal_year, people=people
    )


@pytest.fixture
def leak(world, tmp_path):
    """Insurer A's lists of FY2021 and FY2022 (the same people) and B's of FY2022; a
    leaked file holding two of A's people and one of B's. Returns (incident, leaked
    people of A, leaked person of B, people of A not in the file)."""
    people_a = [p for p in synthetic_people(16, seed=3, fiscal_year=2022) if p.phone][:6]
    people_b = [p for p in synthetic_people(8, seed=4, fiscal_year=2022) if p.phone][:2]
    load(world, people_a, fiscal_year=2021)
    load(world, people_a, fiscal_year=2022)
    load(world, people_b, insurer="b")
    leaked_a, person_b = people_a[:2], people_b[0]
    incident = scope(write_csv(tmp_path, [retyped(p) for p in [*leaked_a, person_b]]))
    assert incident.persons == 2 * 2 + 1, incident.error_message
    return incident, leaked_a, person_b, people_a[2:]


def wareki(born):
    era, year = era_of(born)
    return f"{era.letter}{year}.{born.month}.{born.day}"


def ask(world, kana="", birth_date="", phone="", actor=None):
    """What the desk answers the caller who states these (every incident searched)."""
    return inquiry.lookup(actor=actor or world.desk, kana=kana, birth_date=birth_date, phone=phone)


def named(in_incidents):
    """(incident, [(insurer, fiscal years)]) for each incident of an answer's part."""
    return [
        (hit.incident.pk, [(lists.insurer, lists.fiscal_years) for lists in hit.lists])
        for hit in in_incidents
    ]


def scope_titled(tmp_path, title, people, aware_on):
    """An incident of its own title for a leaked file holding `people`, scoped."""
    path = write_csv(tmp_path, [retyped(p) for p in people], name=f"{title}.csv")
    incident = services.open_incident(actor=None, title=title, aware_on=aware_on)
    return services.run_scoping(incident, path)


def lookups():
    return list(Event.objects.filter(tag=AuditTag.INCIDENT_INQUIRY).order_by("seq"))


def test_an_affected_caller_stated_another_way_hears_the_insurer_years_and_items(world, leak):
    incident, (person, _), _, _ = leak
    hiragana = jaconv.kata2hira(person.name_kana).replace(" ", "　")
    by_birth = ask(world, kana=hiragana, birth_date=wareki(person.birth_date))
    half_width = jaconv.z2h(person.name_kana, kana=True).replace(" ", "")
    by_phone = ask(world, kana=half_width, phone=jaconv.h2z(person.phone, digit=True))

    for answer in (by_birth, by_phone):
        assert answer.found
        assert named(answer.found_in) == [
            (incident.pk, [("テスト市A", (FiscalYear(2021), FiscalYear(2022)))])
        ]
        assert [str(item) for item in answer.found_in[0].items] == [
            "氏名", "氏名（カナ）", "生年月日", "電話番号", "住所"
        ]  # fmt: skip
        assert (answer.shredded, answer.pending) == ((), ())
        assert [i.pk for i in answer.searched] == [incident.pk]
    assert [str(k) for k in by_birth.asked_by] == ["カナ氏名と生年月日"]
    assert [str(k) for k in by_phone.asked_by] == ["カナ氏名と電話番号"]


def test_the_insurer_named_is_the_callers_own(world, leak):
    incident, _, person_b, _ = leak
    answer = ask(world, kana=person_b.name_kana, birth_date=str(person_b.birth_date))
    assert named(answer.found_in) == [(incident.pk, [("テスト町B", (FiscalYear(2022),))])]


def test_a_stored_person_the_file_did_not_hold_is_not_found(world, leak):
    incident, _, _, others = leak
    person = others[0]
    assert Target.objects.count() == 6 * 2 + 2  # stored: the desk simply must not say so
    answer = ask(world, kana=person.name_kana, birth_date=str(person.birth_date))
    assert (answer.found, answer.found_in) == (False, ())
    assert [i.pk for i in answer.searched] == [incident.pk]


def test_a_caller_sharing_only_a_leaked_phone_is_not_found(world, leak):
    _, (person, _), _, _ = leak
    # A relative on the same landline: another given name, another birth date.
    answer = ask(world, kana="ベツメイ ハナコ", phone=person.phone)
    assert not answer.found


def test_a_person_the_leak_named_only_by_a_household_phone_is_not_found(world, tmp_path):
    people = [p for p in synthetic_people(10, seed=5, fiscal_year=2022) if p.phone][:3]
    load(world, people)
    relative = ["別名 太郎", "ベツメイ タロウ", "1961/2/2", people[0].phone, "岐阜県どこか町1-1"]
    incident = scope(write_csv(tmp_path, [relative]))
    assert incident.tiers["possible"] == 1
    person = people[0]
    assert not ask(world, kana=person.name_kana, phone=person.phone).found
    assert not ask(world, kana=person.name_kana, birth_date=str(person.birth_date)).found


def test_a_canary_in_the_leak_is_no_one_to_the_desk(world, tmp_path, canaries):
    people = [p for p in synthetic_people(10, seed=6, fiscal_year=2022) if p.phone][:3]
    target_list = load(world, people)
    canary = opened(Target.objects.get(pk=min(canaries.of_list(target_list))))
    row = [canary["name_kanji"], canary["name_kana"], canary["birth_date"].replace("-", "/"),
           canary["phone"], canary["address"]]  # fmt: skip
    incident = scope(write_csv(tmp_path, [row]))
    assert Match.objects.get(incident=incident).canary
    answer = ask(world, kana=canary["name_kana"], birth_date=canary["birth_date"])
    assert not answer.found


def test_a_shredded_list_is_named_as_one_the_desk_cannot_answer_for(world, leak):
    incident, (person, _), _, _ = leak
    fy2021 = world.insurer_a.target_lists.get(fiscal_year=2021)
    shred_list(actor=world.security, target_list=fy2021)
    answer = ask(world, kana=person.name_kana, birth_date=str(person.birth_date))
    assert named(answer.found_in) == [(incident.pk, [("テスト市A", (FiscalYear(2022),))])]
    assert named(answer.shredded) == [(incident.pk, [("テスト市A", (FiscalYear(2021),))])]


@pytest.mark.parametrize(
    ("kana", "birth_date", "phone", "code"),
    [
        ("", "1970/3/2", "", "no_kana"),
        ("山田 太郎", "1970/3/2", "", "kana_not_kana"),
        ("ヤマダ タロウ", "", "", "no_usable_key"),
        ("ヤマダ タロウ", "3月2日", "", "bad_birth_date"),
        ("ヤマダ タロウ", "", "1234", "bad_phone"),
        ("", "", "090-1234-5678", "no_kana"),  # the phone alone names a household
    ],
)
def test_a_statement_without_a_usable_pair_is_refused_before_any_lookup(
    kana, birth_date, phone, code
):
    with pytest.raises(inquiry.UnusableStatement) as refused:
        inquiry.stated_parts(kana=kana, birth_date=birth_date, phone=phone)
    assert refused.value.code == code


def test_every_lookup_is_on_the_record_without_what_was_stated(world, leak):
    incident, (person, _), _, others = leak
    stated = [
        {"kana": jaconv.kata2hira(person.name_kana), "birth_date": wareki(person.birth_date)},
        {"kana": others[0].name_kana, "phone": others[0].phone},
    ]
    for statement in stated:
        ask(world, **statement)
    events = lookups()
    assert [json.loads(e.details) for e in events] == [
        {"found": "yes", "searched": 1, f"incident_{incident.pk}": "yes"},
        {"found": "no", "searched": 1, f"incident_{incident.pk}": "no"},
    ]
    assert {(e.actor_user_id, e.outcome, e.target_id, e.insurer_id) for e in events} == {
        (world.desk.pk, "allowed", None, None)
    }
    values = [v for s in stated for v in s.values()]
    values += [v.replace("-", "") for v in values] + [str(person.birth_date)]
    for event in Event.objects.all():
        text = " ".join(str(getattr(event, f.name)) for f in Event._meta.concrete_fields)
        assert not [v for v in values if v in text]


@pytest.mark.parametrize(
    "role",
    [
        Role.OPERATOR,
        Role.INSURER_STAFF,
        Role.SYSADMIN,
        Role.SECURITY_OFFICER,
        Role.FEDERATION_ADMIN,
        Role.SUPERVISOR,
    ],
)
def test_no_other_role_may_look_up_and_each_refusal_is_on_the_record(world, leak, role):
    _, (person, _), _, _ = leak
    user = world.users()[role]
    with pytest.raises(NotPermitted):
        ask(world, person.name_kana, str(person.birth_date), actor=user)
    [event] = lookups()
    assert (event.actor_user_id, event.outcome) == (user.pk, "denied")
    assert event.reason == "missing:incident:inquiry:lookup"


def test_with_no_incident_scoped_yet_a_lookup_is_refused(world):
    services.open_incident(actor=None, title="t", aware_on=FiscalYear(2026).starts)
    with pytest.raises(inquiry.InquiryRefused) as refused:
        ask(world, kana="ヤマダ タロウ", birth_date="1970/3/2")
    assert refused.value.code == "not_scoped"
    assert lookups()[0].reason == "not_scoped"


def test_a_caller_leaked_in_an_earlier_incident_only_is_found_there(world, tmp_path):
    people = [p for p in synthetic_people(16, seed=7, fiscal_year=2022) if p.phone][:3]
    load(world, people)
    earlier = scope_titled(tmp_path, "earlier", [people[0], people[2]], date(2026, 10, 1))
    later = scope_titled(tmp_path, "later", [people[1], people[2]], date(2026, 11, 20))

    first, second, both = (
        ask(world, kana=p.name_kana, birth_date=str(p.birth_date)) for p in people
    )
    fy2022 = [("テスト市A", (FiscalYear(2022),))]
    assert named(first.found_in) == [(earlier.pk, fy2022)]
    assert named(second.found_in) == [(later.pk, fy2022)]
    assert named(both.found_in) == [(later.pk, fy2022), (earlier.pk, fy2022)]
    for answer in (first, second, both):
        assert [i.pk for i in answer.searched] == [later.pk, earlier.pk]
    outcomes = [("no", "yes"), ("yes", "no"), ("yes", "yes")]
    assert [json.loads(e.details) for e in lookups()] == [
        {"found": "yes", "searched": 2, f"incident_{later.pk}": in_later,
         f"incident_{earlier.pk}": in_earlier}
        for in_later, in_earlier in outcomes
    ]  # fmt: skip


def test_an_incident_still_being_scoped_is_named_as_not_yet_answered_for(world, leak):
    incident, (person, _), _, others = leak
    pending = services.open_incident(actor=None, title="新しい名簿", aware_on=date(2026, 12, 1))
    for caller in (person, others[0]):
        answer = ask(world, kana=caller.name_kana, birth_date=str(caller.birth_date))
        assert [i.pk for i in answer.pending] == [pending.pk]
        assert [i.pk for i in answer.searched] == [incident.pk]


def test_the_lookup_over_the_hourly_budget_is_refused_and_raises_a_critical_alert(
    world, leak, settings
):
    settings.YOBIKAKE_INQUIRY_BUDGET = 2
    _, (person, _), _, _ = leak
    statement = {"kana": person.name_kana, "birth_date": str(person.birth_date)}
    for _ in range(2):
        assert ask(world, **statement).found
    assert not Alert.objects.filter(rule="inquiry_budget").exists()
    with pytest.raises(inquiry.InquiryRefused) as refused:
        ask(world, **statement)
    assert refused.value.code == "over_budget"
    assert [(e.outcome, e.reason) for e in lookups()] == [
        ("allowed", ""), ("allowed", ""), ("denied", "over_budget")
    ]  # fmt: skip
    alert = Alert.objects.get(rule="inquiry_budget")
    assert (alert.severity, alert.subject_user_id) == (Alert.Severity.CRITICAL, world.desk.pk)
    # Another desk user has a budget of their own.
    other = make_user("desk-2", world.federation, Role.INQUIRY_DESK)
    assert ask(world, actor=other, **statement).found


def test_the_desk_role_needs_a_second_person_and_never_goes_to_a_sysadmin(world):
    clerk = make_user("clerk", world.federation, None)
    assignment = accounts.request_role(actor=world.sysadmin, user=clerk, role=Role.INQUIRY_DESK)
    assert assignment.status == RoleAssignment.Status.PENDING
    accounts.approve_role(actor=world.security, assignment=assignment)
    assert RoleAssignment.objects.get(pk=assignment.pk).status == RoleAssignment.Status.ACTIVE
    with pytest.raises(AccountError):  # a maintenance contractor is not the federation
        accounts.request_role(actor=world.sysadmin, user=world.sysadmin, role=Role.INQUIRY_DESK)


# The page.


def test_the_desk_page_answers_in_japanese_and_shows_nothing_of_the_person(world, leak, as_user):
    incident, (person, _), _, others = leak
    client = as_user(world.desk)
    page = client.get("/inquiry/")
    assert page.status_code == 200
    assert "incident" not in page.context["form"].fields  # nothing to choose: all are searched

    form = {"kana": jaconv.kata2hira(person.name_kana)}
    found = client.post("/inquiry/", form | {"birth_date": wareki(person.birth_date)})
    assert found.status_code == 200
    text = found.text
    assert "次の事案で漏えいした情報に含まれています：" in text
    assert f"事案「{incident.title}」（2026-11-26 把握）" in text
    assert "テスト市A 令和3年度（FY2021）、令和4年度（FY2022）" in text
    assert "漏えいした項目：氏名、氏名（カナ）、生年月日、電話番号、住所" in text
    assert "範囲の特定が済んだすべての事案（1件）" in text
    target_ids = Target.objects.values_list("pk", flat=True)
    for value in [*(v for p in LOADED_PEOPLE for v in (p.name_kanji, p.address)), *target_ids]:
        assert str(value) not in text
    assert found.context["form"]["kana"].value() in (None, "")  # cleared for the next caller
    assert found["Cache-Control"].startswith("max-age=0")

    other = others[0]
    missing = client.post("/inquiry/", form | {"kana": other.name_kana, "phone": other.phone})
    assert NOT_FOUND in missing.text
    assert "含まれています：" not in missing.text


def test_a_statement_without_a_usable_pair_is_a_form_error_and_no_lookup(world, leak, as_user):
    _, (person, _), _, _ = leak
    response = as_user(world.desk).post("/inquiry/", {"kana": person.name_kana, "phone": "12"})
    assert response.status_code == 200
    assert "国内の電話番号ではありません" in response.text
    response = as_user(world.desk).post("/inquiry/", {"kana": person.name_kana})
    assert "カナ氏名だけでは本人を特定できません" in response.text
    assert lookups() == []


def test_the_page_says_when_the_budget_is_spent(world, leak, as_user, settings):
    settings.YOBIKAKE_INQUIRY_BUDGET = 0
    _, (person, _), _, _ = leak
    response = as_user(world.desk).post(
        "/inquiry/",
        {"kana": person.name_kana, "birth_date": str(person.birth_date)},
    )
    assert response.status_code == 403
    assert "1時間あたりの照会件数の上限に達しました" in response.text
    assert "含まれています" not in response.text


def test_the_page_says_when_no_incident_was_scoped(world, as_user):
    response = as_user(world.desk).get("/inquiry/")
    assert "漏えい範囲の特定が済んだ事案はまだありません" in response.text


@pytest.mark.parametrize(
    "role", [Role.OPERATOR, Role.INSURER_STAFF, Role.SYSADMIN, Role.SECURITY_OFFICER]
)
def test_other_roles_get_403_on_the_page_and_the_refusal_is_on_the_record(
    world, leak, as_user, role
):
    _, (person, _), _, _ = leak
    client = as_user(world.users()[role])
    assert client.get("/inquiry/").status_code == 403
    form = {"kana": person.name_kana, "phone": person.phone}
    assert client.post("/inquiry/", form).status_code == 403
    denials = Event.objects.filter(
        tag=AuditTag.PERMISSION_DENY, actor_user_id=world.users()[role].pk
    )
    assert [e.reason for e in denials] == ["missing:incident:inquiry:lookup"] * 2
    assert lookups() == []


def test_the_page_answers_for_every_incident_whichever_is_newest(world, tmp_path, as_user):
    people = [p for p in synthetic_people(16, seed=8, fiscal_year=2022) if p.phone][:2]
    load(world, people)
    earlier = scope_titled(tmp_path, "市役所で見つかった名簿", [people[0]], date(2026, 10, 1))
    later = scope_titled(tmp_path, "名簿業者サイト", [people[1]], date(2026, 11, 20))
    person = people[0]
    client = as_user(world.desk)
    # As the page was posted when it offered the newest incident, chosen by default.
    form = {"incident": later.pk, "kana": person.name_kana, "birth_date": str(person.birth_date)}
    text = client.post("/inquiry/", form).text
    assert "次の事案で漏えいした情報に含まれています：" in text
    assert f"事案「{earlier.title}」（2026-10-01 把握）" in text
    assert f"事案「{later.title}」" not in text.split('data-testid="searched"')[0]
    assert NOT_FOUND not in text
    assert "範囲の特定が済んだすべての事案（2件）" in text
