"""A campaign's results file: requested by the insurer's staff, approved by a second
person from another organisation or in another role within the time limit, downloaded
once, encrypted to the insurer's age key; it holds the campaign's people (never a
list's canary) and K watermark rows of its own, which name the export in a leaked copy."""

import json
from collections import Counter
from datetime import timedelta
from io import StringIO

import pyrage
import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from tests.calling.conftest import running_campaign
from tests.conftest import make_user
from tests.exports.conftest import decrypt_csv
from tests.incidents.test_scoping import opened, retyped, scope, write_csv
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import ROLE_PERMISSIONS, Permission, Role
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Disposition
from yobikake.exports import services
from yobikake.exports.models import Approval, WatermarkRow
from yobikake.exports.results import request_results
from yobikake.incidents import selectors as incident_selectors
from yobikake.intake.models import Target
from yobikake.synth.people import Person

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
    return services.approve(actor=world.fed_admin, approval=requested)


def denials(tag, **filters):
    return Event.objects.filter(tag=tag, outcome=Event.Outcome.DENIED, **filters)


def key(person: Person) -> tuple[str, str, str]:
    return person.name_kanji, person.name_kana, person.address


def rows_of(released, identity):
    header, *rows = decrypt_csv(released.data, identity)
    assert len(header) == 17
    return rows


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
    services.approve(actor=world.fed_admin, approval=approval)

    released = services.release_export(actor=world.staff_a, approval=approval)

    assert released.name.endswith(".csv.age")
    for stranger in (identities[world.insurer_b.pk], pyrage.x25519.Identity.generate()):
        with pytest.raises(pyrage.DecryptError):
            pyrage.decrypt(released.data, [stranger])
    rows = rows_of(released, identities[world.insurer_a.pk])
    assert len(rows) == len(people) + K
    in_file = Counter((r[0], r[1], r[6]) for r in rows)
    assert not Counter(map(key, people)) - in_file  # everyone of the campaign
    canary_values = [opened(Target.objects.get(pk=pk)) for pk in planted]
    for values in canary_values:
        assert (values["name_kanji"], values["name_kana"], values["address"]) not in in_file
    assert WatermarkRow.objects.filter(approval=approval).count() == K
    approval.refresh_from_db()
    assert approval.state == Approval.State.USED
    [event] = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED)
    assert json.loads(event.details)["count"] == len(people)


def test_the_file_says_what_calling_came_to(world, identities, campaign, approved):
    rows = rows_of(
        services.release_export(actor=world.staff_a, approval=approved),
        identities[world.insurer_a.pk],
    )
    called = [r for r in rows if r[10] == "受診予定"]
    assert called and all(r[11:14] == ["2", "1", "1"] for r in called)
    # Everyone not yet called, in the file as sent, with no outcome.
    assert Counter(r[10] for r in rows)[""] >= len(campaign.people) - 1 - K


def test_the_watermark_stores_blind_indexes_never_plaintext(world, identities, approved):
    rows = rows_of(
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
            assert row[0].encode() not in stored and row[6].encode() not in stored


def test_an_export_without_a_second_approver_is_refused_on_the_record(world, requested):
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=requested)
    assert refused.value.code == "not_approved"
    [denial] = denials(AuditTag.REVEAL_EXPORT)
    assert denial.reason == "not_approved" and denial.actor_user_id == world.staff_a.pk

    with pytest.raises(AccountError) as own:
        services.approve(actor=world.staff_a, approval=requested)
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
        services.approve(actor=world.fed_admin, approval=requested)
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
        services.approve(actor=colleague, approval=requested)
    assert refused.value.code == "same_organization"
    [denial] = denials(AuditTag.APPROVAL_APPROVE)
    assert denial.actor_user_id == colleague.pk and denial.reason == "same_organization"
    requested.refresh_from_db()
    assert requested.state == Approval.State.REQUESTED


def test_every_row_s_age_agrees_with_its_birth_date_watermarks_included(
    world, identities, approved
):
    import csv
    import io
    from datetime import date

    released = services.release_export(actor=world.staff_a, approval=approved)
    text = pyrage.decrypt(released.data, [identities[world.insurer_a.pk]]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    year_end = date(approved_fiscal_year(approved) + 1, 3, 31)
    for row in rows:
        born = date.fromisoformat(row[3])
        age = year_end.year - born.year - ((year_end.month, year_end.day) < (born.month, born.day))
        assert int(row[4]) == age


def approved_fiscal_year(approval):
    from yobikake.calling.models import Campaign

    return Campaign.objects.get(pk=approval.subject["campaign_id"]).fiscal_year


def test_an_approver_without_the_approval_permission_is_refused(world, requested):
    with pytest.raises(AccountError) as refused:
        services.approve(actor=world.supervisor, approval=requested)
    assert refused.value.code == f"missing:{Permission.EXPORT_ANY_APPROVE}"


@pytest.mark.parametrize("retype", [False, True], ids=["as-is", "retyped"])
def test_a_leaked_copy_is_attributed_to_its_export(
    world, identities, approved, tmp_path, retype, as_user
):
    released = services.release_export(actor=world.staff_a, approval=approved)
    text = pyrage.decrypt(released.data, [identities[world.insurer_a.pk]])
    if retype:
        people = [
            Person(r[0], r[1], r[2], timezone.datetime.fromisoformat(r[3]).date(), r[7], r[5],
                   r[6], r[8])
            for r in rows_of(released, identities[world.insurer_a.pk])
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
