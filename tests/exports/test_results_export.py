"""A campaign's results file: requested by the insurer's staff, approved by a second
person from another organisation or in another role within the time limit, downloaded
once, encrypted to the insurer's age key; it holds the campaign's people (never a
list's canary) and K watermark rows of its own, which name the export in a leaked copy."""

import json
import re
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta
from io import StringIO

import pyrage
import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse

from tests.calling.conftest import running_campaign, within_contract
from tests.conftest import make_user
from tests.custody_registry import approve_confirmed, confirm_filed_approvals
from tests.exports.conftest import decrypt_csv
from tests.incidents.test_scoping import opened, retyped, scope, write_csv
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import ROLE_PERMISSIONS, Permission, Role
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import services as calling
from yobikake.calling.models import CallTarget, Disposition
from yobikake.custody.alerts import AlertKind
from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable, Refusal
from yobikake.exports import services
from yobikake.exports.models import Approval, WatermarkRow
from yobikake.exports.results import request_results
from yobikake.incidents import selectors as incident_selectors
from yobikake.intake.models import Target
from yobikake.synth.people import Person
from yobikake.vault.custodian import custodian

K = 3


@pytest.fixture
def campaign(world, identities, settings):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = K
    campaign, target_list, people = running_campaign(world, count=12, seed=5)
    # Some calling done: the file carries what it came to.
    first = CallTarget.objects.filter(campaign=campaign, holdout=False).order_by("pk").first()
    first.attempts, first.reached, first.intends_to_attend = 2, True, True
    first.last_disposition = Disposition.objects.get(code="intends")
    first.save(update_fields=["attempts", "reached", "intends_to_attend", "last_disposition"])
    campaign.people = people
    campaign.target_list = target_list
    return campaign


@pytest.fixture
def requested(world, campaign):
    return request_results(actor=world.staff_a, campaign=campaign)


@pytest.fixture
def approved(world, requested):
    return approve_confirmed(actor=world.fed_admin, approval=requested)


def denials(tag, **filters):
    return Event.objects.filter(tag=tag, outcome=Event.Outcome.DENIED, **filters)


def key(person: Person) -> tuple[str, str, str]:
    return person.name_kanji, person.name_kana, person.address


# The file as the insurer's staff read it: words, dates in both calendars, every column.

SEX_WORDS = {"1": "男", "2": "女"}
YES_NO = {"はい", "いいえ"}
DATA_COLUMNS = (
    "氏名",
    "氏名（カナ）",
    "性別",
    "生年月日（和暦）",
    "生年月日（西暦）",
    "年齢（年度末）",
    "郵便番号",
    "住所",
    "電話番号",
    "被保険者番号",
)
CALLING_COLUMNS = (
    "区分",
    "結果",
    "架電回数",
    "最終架電日時",
    "本人に接触",
    "受診予定",
    "折り返し日時",
    "電話番号調査",
    "受診日",
)


def start_campaign_over(world, target_list):
    """A started campaign of insurer A over `target_list`, as `running_campaign` makes."""
    with within_contract(world, 2022):
        campaign = calling.create_campaign(
            actor=world.supervisor, insurer=world.insurer_a, fiscal_year=2022, lists=[target_list]
        )
        calling.assign_operators(
            actor=world.supervisor, campaign=campaign, operators=[world.operator]
        )
        return calling.start_campaign(actor=world.supervisor, campaign=campaign, seed=1)


def named_rows(released, identity) -> list[dict[str, str]]:
    header, *rows = decrypt_csv(released.data, identity)
    assert tuple(header) == DATA_COLUMNS + CALLING_COLUMNS
    return [dict(zip(header, row, strict=True)) for row in rows]


def showa(day: date) -> str:
    # Everyone aged 40–74 in FY2022 was born in 昭和 (1926-12-25 – 1989-01-07).
    assert date(1926, 12, 25) <= day <= date(1989, 1, 7)
    return f"昭和{day.year - 1925}年{day.month}月{day.day}日"


def age_at(day: date, born: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def row_key(row: dict[str, str]) -> tuple[str, str, str]:
    return row["氏名"], row["氏名（カナ）"], row["住所"]


def split(rows, people):
    by_key = {key(p): p for p in people}
    real = [(row, by_key[row_key(row)]) for row in rows if row_key(row) in by_key]
    marks = [row for row in rows if row_key(row) not in by_key]
    return real, marks


def test_the_request_binds_the_campaigns_people_with_one_audit_row(world, campaign, requested):
    assert requested.kind == Approval.Kind.RESULTS and requested.insurer == world.insurer_a
    assert requested.subject["campaign_id"] == campaign.pk
    assert requested.subject["target_count"] == len(campaign.people)
    [event] = Event.objects.filter(tag=AuditTag.APPROVAL_REQUEST)
    assert event.actor_user_id == world.staff_a.pk and event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details)["kind"] == "results"


def test_the_file_opens_only_with_the_insurers_key_and_holds_its_people_and_k_watermark_rows(
    world, identities, canaries, settings
):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = K
    campaign, target_list, people = running_campaign(world, count=12, seed=6)
    planted = canaries.of_list(target_list)
    assert len(planted) == 3
    approval = request_results(actor=world.staff_a, campaign=campaign)
    approve_confirmed(actor=world.fed_admin, approval=approval)

    released = services.release_export(actor=world.staff_a, approval=approval)

    assert released.name.endswith(".csv.age")
    for stranger in (identities[world.insurer_b.pk], pyrage.x25519.Identity.generate()):
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(released.data, [stranger])
    rows = named_rows(released, identities[world.insurer_a.pk])
    assert len(rows) == len(people) + K
    in_file = Counter(map(row_key, rows))
    assert not Counter(map(key, people)) - in_file  # everyone of the campaign
    canary_values = [opened(Target.objects.get(pk=pk)) for pk in planted]
    for values in canary_values:
        assert (values["name_kanji"], values["name_kana"], values["address"]) not in in_file
    assert WatermarkRow.objects.filter(approval=approval).count() == K
    approval.refresh_from_db()
    assert approval.state == Approval.State.USED
    [event] = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED)
    assert json.loads(event.details)["count"] == len(people)


def test_the_custodian_opens_the_file_s_people_in_one_bulk_open_on_its_ledger(
    world, campaign, approved
):
    services.release_export(actor=world.staff_a, approval=approved)
    inner = custodian().custodian
    [bulk] = [e for e in inner.entries() if e.kind == "open_bulk"]
    assert (bulk.purpose, bulk.holder_user_id, bulk.insurer_id) == (
        "export",
        world.staff_a.pk,
        world.insurer_a.pk,
    )
    assert bulk.reason.startswith(f"{len(campaign.people)} rows of lists {campaign.target_list.pk}")
    assert [a.kind for a in inner.alerts()] == [AlertKind.BULK_OPENED]


def test_an_unreachable_custodian_releases_nothing_and_the_approval_stays_usable(
    world, approved, monkeypatch
):
    def unreachable(request):
        raise CustodyUnavailable("stopped")

    port = custodian()
    opens = port.produce_file
    monkeypatch.setattr(port, "produce_file", unreachable)
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=approved)
    assert refused.value.code == "custodian_unavailable"
    [denial] = denials(AuditTag.REVEAL_EXPORT)
    assert denial.reason == "custodian_unavailable"
    assert not Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED)
    approved.refresh_from_db()
    assert approved.state == Approval.State.APPROVED and not WatermarkRow.objects.exists()
    monkeypatch.setattr(port, "produce_file", opens)  # the custodian back
    assert services.release_export(actor=world.staff_a, approval=approved).data


def test_a_custodian_s_refusal_releases_nothing_and_is_on_the_record(world, approved, monkeypatch):
    def refuse(request):
        raise CustodyRefused(Refusal.BULK_LIMIT)

    monkeypatch.setattr(custodian(), "produce_file", refuse)
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=approved)
    assert refused.value.code == "custody_refused"
    [denial] = denials(AuditTag.REVEAL_EXPORT)
    assert denial.reason == Refusal.BULK_LIMIT
    approved.refresh_from_db()
    assert approved.state == Approval.State.APPROVED


def test_the_watermark_stores_blind_indexes_never_plaintext(world, identities, approved):
    rows = named_rows(
        services.release_export(actor=world.staff_a, approval=approved),
        identities[world.insurer_a.pk],
    )
    for mark in WatermarkRow.objects.filter(approval=approved):
        assert mark.insurer_id == world.insurer_a.pk
        assert mark.idx_kana_birth is not None and mark.idx_name_address is not None
        stored = b"".join(
            bytes(v) for v in vars(mark).values() if isinstance(v, bytes | memoryview)
        )
        for row in rows:
            assert row["氏名"].encode() not in stored and row["住所"].encode() not in stored


def test_an_export_without_a_second_approver_is_refused_on_the_record(world, requested):
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=requested)
    assert refused.value.code == "not_approved"
    [denial] = denials(AuditTag.REVEAL_EXPORT)
    assert denial.reason == "not_approved" and denial.actor_user_id == world.staff_a.pk

    with pytest.raises(AccountError) as own:
        approve_confirmed(actor=world.staff_a, approval=requested)
    assert own.value.code == "own_request"
    [denial] = denials(AuditTag.APPROVAL_APPROVE)
    assert json.loads(denial.details) == {"approval_id": requested.pk}
    assert not WatermarkRow.objects.exists()


def test_an_expired_approval_is_refused_on_the_record(world, approved):
    late = time_machine.travel(approved.expires_at + timedelta(minutes=1))
    with late, pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=approved)
    assert refused.value.code == "expired"
    [denial] = denials(AuditTag.REVEAL_EXPORT)
    assert denial.reason == "expired"
    assert not WatermarkRow.objects.exists()


def test_a_request_expired_before_its_approval_is_refused_on_the_record(world, requested):
    late = time_machine.travel(requested.expires_at + timedelta(minutes=1))
    with late, pytest.raises(AccountError) as refused:
        approve_confirmed(actor=world.fed_admin, approval=requested)
    assert refused.value.code == "expired"
    [denial] = denials(AuditTag.APPROVAL_APPROVE)
    assert denial.reason == "expired"
    requested.refresh_from_db()
    assert requested.state == Approval.State.EXPIRED


def test_an_approver_of_the_same_organisation_is_refused_on_the_record(
    world, requested, monkeypatch
):
    # As if the insurer's staff could approve exports: a colleague still may not (issue
    # 8: requested and approved by the same organisation is refused, whatever the role).
    staff = ROLE_PERMISSIONS[Role.INSURER_STAFF]
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.INSURER_STAFF, staff | {Permission.EXPORT_ANY_APPROVE}
    )
    colleague = make_user("staff-a2", world.insurer_a.organization, Role.INSURER_STAFF)
    with pytest.raises(AccountError) as refused:
        approve_confirmed(actor=colleague, approval=requested)
    assert refused.value.code == "same_organization"
    [denial] = denials(AuditTag.APPROVAL_APPROVE)
    assert denial.actor_user_id == colleague.pk and denial.reason == "same_organization"
    requested.refresh_from_db()
    assert requested.state == Approval.State.REQUESTED


def test_an_approver_without_the_approval_permission_is_refused(world, requested):
    with pytest.raises(AccountError) as refused:
        approve_confirmed(actor=world.supervisor, approval=requested)
    assert refused.value.code == f"missing:{Permission.EXPORT_ANY_APPROVE}"


@pytest.mark.parametrize("retype", [False, True], ids=["as-is", "retyped"])
def test_a_leaked_copy_is_attributed_to_its_export(
    world, identities, approved, tmp_path, retype, as_user
):
    released = services.release_export(actor=world.staff_a, approval=approved)
    text = pyrage.decrypt(released.data, [identities[world.insurer_a.pk]])
    if retype:
        codes = {word: code for code, word in SEX_WORDS.items()}
        people = [
            Person(r["氏名"], r["氏名（カナ）"], codes[r["性別"]],
                   datetime.strptime(r["生年月日（西暦）"], "%Y/%m/%d").date(), r["電話番号"],
                   r["郵便番号"], r["住所"], r["被保険者番号"])
            for r in named_rows(released, identities[world.insurer_a.pk])
        ]  # fmt: skip
        path = write_csv(tmp_path, [retyped(p) for p in people])
    else:
        path = tmp_path / "leak.csv"
        path.write_bytes(text)

    incident = scope(path)

    [found] = incident_selectors.exports_found(incident)
    assert found.approval_id == approved.pk and len(found.leak_rows) == K
    assert found.insurer == world.insurer_a
    assert found.approval.requested_by == world.staff_a
    assert incident.unmatched == 0
    touches = Event.objects.filter(tag=AuditTag.CANARY_TOUCH)
    assert touches.count() == K
    assert all(json.loads(e.details)["approval_id"] == approved.pk for e in touches)
    assert Alert.objects.filter(rule="canary_touched", severity="critical").exists()
    # The watermark rows are nobody: the file's people are the campaign's, no more.
    assert incident.people == approved.subject["target_count"]
    assert not incident_selectors.canaries_found(incident)

    page = as_user(world.security).get(reverse("incidents:incident_detail", args=[incident.pk]))
    assert f'data-testid="export-found-{approved.pk}"' in page.text
    assert world.staff_a.username in page.text

    out = StringIO()
    call_command("incident", "scope", str(path), "--json", stdout=out)
    [export] = json.loads(out.getvalue())["exports"]
    assert export["approval_id"] == approved.pk and len(export["leak_rows"]) == K
    assert export["requested_by"] == world.staff_a.username


def test_staff_request_the_approver_approves_and_staff_download_through_the_pages(
    world, identities, campaign, as_user
):
    staff = as_user(world.staff_a)
    index = staff.get(reverse("exports:export_index"))
    assert f'data-testid="campaign-{campaign.pk}"' in index.text
    staff.post(reverse("exports:request_results", args=[campaign.pk]))
    approval = Approval.objects.get(kind=Approval.Kind.RESULTS)
    waiting = staff.get(reverse("exports:export_index")).text
    assert 'data-testid="results-requested"' in waiting  # not offered twice
    assert 'data-testid="request-results"' not in waiting
    as_user(world.fed_admin).post(
        reverse("exports:decide", args=[approval.pk]), {"decision": "approve"}
    )
    # Filed with custody, it releases nothing until the approver confirms it there.
    refused = staff.post(reverse("exports:download", args=[approval.pk]), follow=True)
    assert "鍵保管サービスでまだ確認されていません" in refused.text
    confirm_filed_approvals()
    response = staff.post(reverse("exports:download", args=[approval.pk]))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    rows = decrypt_csv(response.content, identities[world.insurer_a.pk])[1:]
    assert len(rows) == len(campaign.people) + K
    again = staff.post(reverse("exports:download", args=[approval.pk]))
    assert again.status_code == 302  # once


def test_another_insurers_staff_get_404_and_the_refusal_is_recorded(
    world, campaign, approved, as_user
):
    other = as_user(world.staff_b)
    response = other.post(reverse("exports:request_results", args=[campaign.pk]))
    assert response.status_code == 404
    [denial] = denials(AuditTag.CAMPAIGN_DENY)
    assert denial.actor_user_id == world.staff_b.pk
    assert json.loads(denial.details) == {"campaign_id": campaign.pk}

    response = other.post(reverse("exports:download", args=[approved.pk]))
    assert response.status_code == 404
    [denial] = denials(AuditTag.EXPORT_DENY)
    assert denial.actor_user_id == world.staff_b.pk
    assert json.loads(denial.details) == {"approval_id": approved.pk}
    assert not WatermarkRow.objects.exists()


def test_a_campaign_of_another_insurer_cannot_be_requested_through_the_service(world, campaign):
    with pytest.raises(AccountError) as refused:
        request_results(actor=world.staff_b, campaign=campaign)
    assert refused.value.code == "not_found"
    [denial] = denials(AuditTag.APPROVAL_REQUEST)
    assert denial.actor_user_id == world.staff_b.pk
    assert not Approval.objects.exists()


def test_a_watermark_row_forged_from_a_real_persons_indexes_does_not_hide_them(
    world, approved, tmp_path
):
    """The database's administrator copies a real person's blind indexes into a watermark
    row: a leaked row of that person still names them (and the watermark is reported)."""
    from yobikake.exports.models import WatermarkRow
    from yobikake.intake.models import Target

    target = Target.objects.filter(insurer_id=world.insurer_a.pk).exclude(idx_phone=None).first()
    WatermarkRow.objects.create(
        approval=approved,
        insurer_id=world.insurer_a.pk,
        **{f"idx_{k}": getattr(target, f"idx_{k}") for k in (
            "phone", "insured_number", "kana_birth", "name_birth", "kana_address",
            "name_address", "kana_phone")},
    )  # fmt: skip
    values = opened(target)
    row = [values["name_kanji"], values["name_kana"], values["birth_date"].replace("-", "/"),
           values["phone"], values["address"]]  # fmt: skip
    incident = scope(write_csv(tmp_path, [row]))
    assert incident.people == 1
    assert incident.matches.filter(target_id=target.pk).exists()
    # A row written into the database has no record: the export's watermark is untrusted.
    assert Alert.objects.filter(rule="watermark_tampered", severity="critical").exists()


def test_the_watermark_is_on_the_record_and_rows_deleted_in_the_database_raise_an_alert(
    world, identities, approved, tmp_path
):
    from yobikake.exports import watermarks

    released = services.release_export(actor=world.staff_a, approval=approved)
    [made] = Event.objects.filter(tag=AuditTag.EXPORT_WATERMARK)
    details = json.loads(made.details)
    assert (details["approval_id"], details["rows"]) == (approved.pk, K)
    assert made.actor_user_id == world.staff_a.pk and made.insurer_id == world.insurer_a.pk
    assert watermarks.tampered() == []
    # Someone hides which export leaked: a watermark row deleted in the database.
    WatermarkRow.objects.filter(approval=approved).first().delete()
    assert watermarks.tampered() == [approved.pk]
    path = tmp_path / "leak.csv"
    path.write_bytes(pyrage.decrypt(released.data, [identities[world.insurer_a.pk]]))
    incident = scope(path)
    [alert] = Alert.objects.filter(rule="watermark_tampered")
    assert alert.severity == "critical" and f"#{approved.pk}" in alert.summary
    scoped = Event.objects.get(tag=AuditTag.INCIDENT_SCOPE)
    assert json.loads(scoped.details)["watermarks_tampered"] == 1
    # The two rows left still name the export.
    [found] = incident_selectors.exports_found(incident)
    assert found.approval_id == approved.pk and len(found.leak_rows) == K - 1


def test_every_column_is_filled_in_words_and_dates_the_insurers_staff_read(
    world, identities, campaign, approved
):
    rows = named_rows(
        services.release_export(actor=world.staff_a, approval=approved),
        identities[world.insurer_a.pk],
    )
    real, marks = split(rows, campaign.people)
    assert len(real) == len(campaign.people) and len(marks) == K
    year_end = date(campaign.fiscal_year + 1, 3, 31)
    for row, person in real:
        assert row["性別"] == SEX_WORDS[person.sex]
        assert row["生年月日（西暦）"] == person.birth_date.strftime("%Y/%m/%d")
        assert row["生年月日（和暦）"] == showa(person.birth_date)
        assert row["年齢（年度末）"] == str(age_at(year_end, person.birth_date))
        assert row["被保険者番号"] == person.insured_number
    # The watermark rows have every column a real row has, in the same forms.
    for row in marks:
        assert row["性別"] in ("男", "女")
        born = datetime.strptime(row["生年月日（西暦）"], "%Y/%m/%d").date()
        assert row["生年月日（和暦）"] == showa(born)
        assert row["年齢（年度末）"] == str(age_at(year_end, born))
        assert row["被保険者番号"] and row["住所"] and row["氏名（カナ）"]
    for row in rows:
        assert row["区分"] in ("架電群", "対照群（架電しない）")
        assert row["本人に接触"] in YES_NO and row["受診予定"] in YES_NO
        # What calling came to, in words, for everyone: never an empty cell or a code.
        assert row["結果"] and not re.search(r"[A-Za-z0-9_]", row["結果"])
        assert int(row["架電回数"]) >= 0
    called = [row for row, _p in real if row["結果"] == "受診予定"]
    assert [(r["架電回数"], r["本人に接触"], r["受診予定"]) for r in called] == [
        ("2", "はい", "はい")
    ]
    held_out = [row for row in rows if row["区分"] == "対照群（架電しない）"]
    assert held_out and all(r["結果"] == "架電なし（対照群）" for r in held_out)
    assert all(r["結果"] == "未架電" for r in marks if r["電話番号"])


def test_a_list_that_gave_only_ages_leaves_every_birth_date_empty_watermarks_included(
    world, identities, settings
):
    from tests.pii import LOADED_PEOPLE
    from yobikake.intake.services import load_target_list
    from yobikake.synth.people import synthetic_people

    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = K
    year_end = date(2023, 3, 31)
    people = [
        replace(p, birth_date=None, age=p.age_on(year_end))
        for p in synthetic_people(10, seed=8, fiscal_year=2022)
    ]
    LOADED_PEOPLE.extend(people)
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people
    )
    campaign = start_campaign_over(world, target_list)
    approval = request_results(actor=world.staff_a, campaign=campaign)
    approve_confirmed(actor=world.fed_admin, approval=approval)

    rows = named_rows(
        services.release_export(actor=world.staff_a, approval=approval),
        identities[world.insurer_a.pk],
    )
    real, marks = split(rows, people)
    assert len(real) == len(people) and len(marks) == K
    for row, person in real:
        assert row["性別"] == SEX_WORDS[person.sex]
        assert row["年齢（年度末）"] == str(person.age)
    for row in rows:
        assert row["生年月日（和暦）"] == row["生年月日（西暦）"] == ""
        assert 40 <= int(row["年齢（年度末）"]) <= 74
        assert row["性別"] in ("男", "女")


def test_no_watermark_row_carries_the_insured_number_of_anyone_the_insurer_sent(
    world, identities, settings, monkeypatch
):
    """The staff tell the watermark rows by their insured numbers, which are no one's:
    even where the numbers leave room for only a few (here nine of ten are taken, the
    templates' numbers written as the list's are)."""
    from tests.pii import LOADED_PEOPLE
    from yobikake.exports import watermarks
    from yobikake.intake.services import load_target_list
    from yobikake.synth.people import synthetic_people

    drawn = watermarks.template
    monkeypatch.setattr(
        watermarks,
        "template",
        lambda shape, **kw: replace(drawn(shape, **kw), insured_number="岐01-0"),
    )

    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = K
    people = [
        replace(p, insured_number=f"岐01-{n}")
        for n, p in enumerate(synthetic_people(9, seed=9, fiscal_year=2022))
    ]
    LOADED_PEOPLE.extend(people)
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people
    )
    campaign = start_campaign_over(world, target_list)
    approval = request_results(actor=world.staff_a, campaign=campaign)
    approve_confirmed(actor=world.fed_admin, approval=approval)

    rows = named_rows(
        services.release_export(actor=world.staff_a, approval=approval),
        identities[world.insurer_a.pk],
    )
    _real, marks = split(rows, people)
    assert [row["被保険者番号"] for row in marks] == ["岐01-9"] * K


def test_the_pages_say_how_many_watermark_rows_the_file_carries_and_how_to_tell_them(
    world, campaign, requested, as_user
):
    n = len(campaign.people)
    said = f"{n}人（ほかに透かし行{K}行、計{n + K}行）"
    assert said in as_user(world.fed_admin).get(reverse("exports:approval_list")).text
    staff_page = as_user(world.staff_a).get(reverse("exports:export_index")).text
    assert said in staff_page
    how = staff_page[staff_page.index('data-testid="watermark-note"') :]
    assert "被保険者番号" in how[: how.index("</p>")]
    [event] = Event.objects.filter(tag=AuditTag.APPROVAL_REQUEST)
    assert json.loads(event.details)["watermark_rows"] == K


def test_the_watermark_rows_are_as_many_as_the_approval_said_whatever_the_setting_now(
    world, identities, campaign, approved, settings
):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 0  # changed on the host after the approval
    rows = named_rows(
        services.release_export(actor=world.staff_a, approval=approved),
        identities[world.insurer_a.pk],
    )
    assert len(rows) == len(campaign.people) + K
    assert WatermarkRow.objects.filter(approval=approved).count() == K


def test_an_approval_written_with_the_application_s_keys_releases_nothing_and_alerts_custody(
    world, requested
):
    from django.utils import timezone

    from yobikake.exports import approvals
    from yobikake.vault.reveal import RevealRefused

    # The insider approves in the database, with a MAC the application accepts.
    Approval.objects.filter(pk=requested.pk).update(
        state=Approval.State.APPROVED, decided_by=world.fed_admin, decided_at=timezone.now()
    )
    forged = Approval.objects.get(pk=requested.pk)
    approvals.seal(forged)
    with pytest.raises(RevealRefused) as refused:
        services.release_export(actor=world.staff_a, approval=forged)
    assert refused.value.code == "approval_unknown"
    alerts = custodian().custodian.alerts()
    assert [a.severity for a in alerts if a.kind == AlertKind.APPROVAL_UNKNOWN] == ["critical"]
