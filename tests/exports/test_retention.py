"""Retention: lists past their deadline are shredded by the schedule and certified;
early deletion needs a second person; certificates verify against the audit log and
are shown only to their insurer and the security officer."""

import copy
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.conftest import load_people, verified_client
from tests.custody_helpers import shredded_in_custody
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.exports import certificates, retention
from yobikake.exports.models import Approval, DeletionCertificate
from yobikake.intake.models import Target, TargetList
from yobikake.tenancy.models import Contract
from yobikake.vault.services import shred_expired_list


def keep_until(target_list: TargetList, until: date) -> None:
    Contract.objects.filter(
        insurer_id=target_list.insurer_id, fiscal_year=target_list.fiscal_year
    ).update(retention_until=until)


@pytest.fixture
def expired(world):
    """Insurer A's FY2021 list, whose deadline (2023-03-31) has passed, and its FY2022
    list, kept until a deadline still to come."""
    old, _people = load_people(world, count=8, seed=1, fiscal_year=2021)
    current, _people = load_people(world, count=5, seed=2, fiscal_year=2022)
    keep_until(current, date(2099, 3, 31))
    return old, current


def enforce(*args: str) -> dict:
    out = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

    call_command("retention", "enforce", "--json", *args, stdout=Sink())
    return json.loads("".join(out))


def test_enforce_shreds_the_expired_list_and_certifies_it(world, expired):
    old, current = expired
    record = enforce()

    assert [row["list_id"] for row in record["shredded"]] == [old.pk]
    assert record["failed"] == []
    old.refresh_from_db()
    assert old.state == TargetList.State.SHREDDED
    assert not Target.objects.filter(target_list=old).exists()
    assert shredded_in_custody(old)  # the private key is gone, the receipt signed
    # The counts stay: rows and the sex × age band aggregates.
    assert old.row_count == 8
    assert sum(old.aggregates["sex_age_band"].values()) == 8
    # The list still to be kept is untouched.
    current.refresh_from_db()
    assert current.state == TargetList.State.ACTIVE
    assert Target.objects.filter(target_list=current).count() == 5

    certificate = DeletionCertificate.objects.get(list_id=old.pk)
    event = Event.objects.get(seq=certificate.event_seq)
    assert (event.tag, event.list_id, event.actor_user_id) == (AuditTag.LIST_SHRED, old.pk, None)
    assert json.loads(event.details)["reason"] == "retention"
    assert certificate.checkpoint_seq >= certificate.event_seq
    assert (certificate.key_name, certificate.key_version) == (f"yobikake-list-{old.pk}", 1)
    assert (certificate.row_count, certificate.fiscal_year) == (8, 2021)
    assert certificate.source_sha256 == old.source_sha256
    assert certificates.verify(certificate) == []
    call_command("retention", "verify-certificate", str(certificate.pk))
    call_command("audit", "verify")


def test_enforce_runs_once_per_list(world, expired):
    enforce()
    again = enforce()
    assert again["due"] == again["shredded"] == []
    assert DeletionCertificate.objects.count() == 1
    assert Event.objects.filter(tag=AuditTag.LIST_SHRED).count() == 1


def test_dry_run_changes_nothing_and_flags_the_list_once(world, expired):
    old, _current = expired
    shreds_before = Event.objects.filter(tag=AuditTag.LIST_SHRED).count()

    record = enforce("--dry-run")
    enforce("--dry-run")

    assert [row["list_id"] for row in record["due"]] == [old.pk]
    assert record["shredded"] == []
    assert record["flagged"] == [old.pk]
    old.refresh_from_db()
    assert old.state == TargetList.State.ACTIVE
    assert Target.objects.filter(target_list=old).count() == 8
    assert not DeletionCertificate.objects.exists()
    assert Event.objects.filter(tag=AuditTag.LIST_SHRED).count() == shreds_before
    # Flagged to the security officer once, however often it is checked.
    assert Alert.objects.filter(rule="retention_overdue").count() == 1
    assert Event.objects.filter(tag=AuditTag.RETENTION_OVERDUE, list_id=old.pk).count() == 1


def test_one_list_failing_does_not_stop_the_others(world, expired, monkeypatch):
    old, current = expired
    keep_until(current, date(2024, 3, 31))
    real = retention.shred_expired_list

    def failing_for_old(*, target_list):
        if target_list.pk == old.pk:
            raise RuntimeError("key service unreachable")
        return real(target_list=target_list)

    monkeypatch.setattr(retention, "shred_expired_list", failing_for_old)
    with pytest.raises(CommandError, match="1 list"):
        call_command("retention", "enforce")
    old.refresh_from_db()
    current.refresh_from_db()
    assert (old.state, current.state) == (TargetList.State.ACTIVE, TargetList.State.SHREDDED)
    assert Target.objects.filter(target_list=old).count() == 8
    # The one left behind is flagged.
    assert Event.objects.filter(tag=AuditTag.RETENTION_OVERDUE, list_id=old.pk).exists()


def test_the_schedule_cannot_shred_a_list_before_its_deadline(world, expired):
    _old, current = expired
    with pytest.raises(NotPermitted):
        shred_expired_list(target_list=current)
    denied = Event.objects.filter(tag=AuditTag.LIST_SHRED).latest("seq")
    assert (denied.outcome, denied.reason) == (Event.Outcome.DENIED, "not_expired")
    assert TargetList.objects.get(pk=current.pk).state == TargetList.State.ACTIVE


def test_an_edited_certificate_does_not_verify(world, expired):
    enforce()
    certificate = DeletionCertificate.objects.get()
    DeletionCertificate.objects.filter(pk=certificate.pk).update(row_count=7)
    certificate.refresh_from_db()
    assert "the certificate's signature does not match its content" in certificates.verify(
        certificate
    )
    with pytest.raises(CommandError):
        call_command("retention", "verify-certificate", str(certificate.pk))


def test_the_certificate_page_is_for_its_insurer_and_the_security_officer(world, expired):
    enforce()
    certificate = DeletionCertificate.objects.get()
    url = reverse("exports:certificate", args=[certificate.pk])

    for user in (world.staff_a, world.security):
        page = verified_client(user).get(url)
        assert page.status_code == 200
        assert certificate.event_hash in page.text
        assert certificate.checkpoint_hash in page.text
        assert certificate.signature in page.text

    assert verified_client(world.staff_b).get(url).status_code == 404
    denied = Event.objects.filter(tag=AuditTag.CERTIFICATE_DENY).latest("seq")
    assert (denied.actor_user_id, denied.reason) == (world.staff_b.pk, "not_yours")
    assert verified_client(world.operator).get(url).status_code == 403


def test_the_retention_page_flags_lists_past_their_deadline(world, expired):
    old, current = expired
    page = verified_client(world.security).get(reverse("exports:retention_index"))
    assert page.status_code == 200
    assert f'data-testid="overdue-{old.pk}"' in page.text
    assert f'data-testid="overdue-{current.pk}"' not in page.text
    # Insurer B's staff see none of insurer A's lists.
    other = verified_client(world.staff_b).get(reverse("exports:retention_index"))
    assert f'data-testid="list-{old.pk}"' not in other.text


def test_early_deletion_needs_the_security_officer_as_second_person(world, expired):
    _old, current = expired
    client = verified_client(world.staff_a)
    client.post(reverse("exports:request_deletion", args=[current.pk]))
    approval = Approval.objects.get(kind=Approval.Kind.LIST_DELETION)
    assert approval.subject == {"list_id": current.pk}

    # Neither the requester nor a federation admin (no retention permission) decides.
    for actor in (world.staff_a, world.fed_admin):
        with pytest.raises(AccountError):
            retention.approve_list_deletion(actor=actor, approval=approval)
    refusals = Event.objects.filter(tag=AuditTag.APPROVAL_APPROVE, outcome=Event.Outcome.DENIED)
    assert [e.reason for e in refusals.order_by("seq")] == [
        "own_request",
        "missing:retention:any:manage",
    ]
    assert TargetList.objects.get(pk=current.pk).state == TargetList.State.ACTIVE
    # Not an export: the export approvers' page does not list it.
    approvers = verified_client(world.fed_admin).get(reverse("exports:approval_list"))
    assert f'data-testid="approval-{approval.pk}"' not in approvers.text

    verified_client(world.security).post(
        reverse("exports:decide_deletion", args=[approval.pk]), {"decision": "approve"}
    )
    current.refresh_from_db()
    assert current.state == TargetList.State.SHREDDED
    certificate = DeletionCertificate.objects.get(list_id=current.pk)
    assert (certificate.reason, certificate.approval_id) == ("early", approval.pk)
    assert certificates.verify(certificate) == []
    approval.refresh_from_db()
    assert (approval.state, approval.used_by_id) == (Approval.State.USED, world.security.pk)
    shred = Event.objects.get(seq=certificate.event_seq)
    assert shred.actor_user_id == world.security.pk


def test_a_refused_early_deletion_keeps_the_list_and_is_audited(world, expired):
    _old, current = expired
    approval = retention.request_list_deletion(actor=world.staff_a, target_list=current)
    retention.refuse_list_deletion(actor=world.security, approval=approval)
    assert Approval.objects.get(pk=approval.pk).state == Approval.State.REFUSED
    refused = Event.objects.filter(tag=AuditTag.APPROVAL_REFUSE).latest("seq")
    assert (refused.actor_user_id, refused.outcome) == (world.security.pk, Event.Outcome.ALLOWED)
    assert TargetList.objects.get(pk=current.pk).state == TargetList.State.ACTIVE


def test_another_insurers_staff_cannot_ask_to_delete_a_list(world, expired):
    _old, current = expired
    response = verified_client(world.staff_b).post(
        reverse("exports:request_deletion", args=[current.pk])
    )
    assert response.status_code == 404
    assert not Approval.objects.filter(kind=Approval.Kind.LIST_DELETION).exists()
    denied = Event.objects.filter(tag=AuditTag.LIST_DENY).latest("seq")
    assert (denied.actor_user_id, denied.reason) == (world.staff_b.pk, "not_yours")


def test_the_task_runs_the_same_enforcement(world, expired):
    from yobikake.exports.tasks import enforce_retention_task

    result = enforce_retention_task.enqueue()
    old, _current = expired
    assert json.loads(result.return_value)["shredded"][0]["list_id"] == old.pk


def test_the_demo_shreds_its_one_expired_list_and_certifies_it(db):
    from tests.conftest import LOADED_PEOPLE
    from yobikake.accounts.models import User
    from yobikake.intake.services import load_target_list
    from yobikake.synth.demo import load_demo, load_demo_retention
    from yobikake.synth.people import synthetic_people
    from yobikake.tenancy.models import Insurer

    load_demo()
    gifu = Insurer.objects.get(name="岐阜市")
    staff = User.objects.get(username="staff-gifu")
    lists = {}
    for year in (2019, 2021):
        people = synthetic_people(4, seed=year, fiscal_year=year)
        LOADED_PEOPLE.extend(people)
        lists[year] = load_target_list(actor=staff, insurer=gifu, fiscal_year=year, people=people)

    said = load_demo_retention()

    certificate = DeletionCertificate.objects.get()
    assert certificate.list_id == lists[2019].pk
    assert f"/retention/certificates/{certificate.pk}/" in said
    assert TargetList.objects.get(pk=lists[2021].pk).state == TargetList.State.ACTIVE
    assert verified_client(staff).get(said.rsplit(" ", 1)[-1]).status_code == 200
    assert load_demo_retention() == ""


@pytest.mark.django_db(transaction=True)
def test_a_list_that_was_called_is_shredded_and_committed_its_calls_counted_still(world):
    """Committed for real (a transactional test): the database checks its foreign keys
    at commit, which a test rolled back never reaches."""
    from tests.calling.conftest import running_campaign
    from yobikake.calling.models import CallTarget
    from yobikake.reports.selectors import campaign_effect
    from yobikake.synth.results import plant_checkup_results

    campaign, target_list, _ = running_campaign(
        world, count=30, fiscal_year=2021, holdout_share=0.4
    )
    keep_until(target_list, date(2023, 3, 31))
    plant_checkup_results(campaign, p0=0.3, effect=0.2, seed=2)
    before = campaign_effect(campaign)
    assert not before.overall.suppressed

    record = enforce()

    assert [row["list_id"] for row in record["shredded"]] == [target_list.pk]
    assert TargetList.objects.get(pk=target_list.pk).state == TargetList.State.SHREDDED
    assert not Target.objects.filter(target_list_id=target_list.pk).exists()
    kept = CallTarget.objects.filter(campaign=campaign)
    assert kept.count() == 30 and not kept.exclude(target=None).exists()
    assert shredded_in_custody(TargetList.objects.get(pk=target_list.pk))
    certificate = DeletionCertificate.objects.get(list_id=target_list.pk)
    assert certificates.verify(certificate) == []
    # The effect report still shows, the same figures, on its page too.
    assert campaign_effect(campaign) == before
    page = verified_client(world.staff_a).get(f"/campaigns/{campaign.pk}/effect/")
    assert page.status_code == 200 and 'data-testid="effect-headline"' in page.text
    call_command("audit", "verify")  # raises when the chain does not hold


def documented_checker():
    """The bundle checker exactly as docs/operations.md gives it to insurers."""
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    code = docs.split("**Verification bundle**", 1)[1].split("```python\n", 1)[1]
    namespace: dict = {"__name__": "checker"}
    exec(code.split("```", 1)[0], namespace)  # noqa: S102 - our own documentation
    return namespace["check_bundle"]


def download_bundle(world) -> dict:
    certificate = DeletionCertificate.objects.get()
    response = verified_client(world.staff_a).get(
        reverse("exports:certificate_bundle", args=[certificate.pk])
    )
    assert response.status_code == 200
    return response.json()


def test_the_verification_bundle_checks_with_the_documented_checker(world, expired):
    enforce()
    certificate = DeletionCertificate.objects.get()
    url = reverse("exports:certificate_bundle", args=[certificate.pk])
    check_bundle = documented_checker()

    for user in (world.staff_a, world.security):
        response = verified_client(user).get(url)
        assert response.status_code == 200
        assert "attachment" in response["Content-Disposition"]
        bundle = response.json()
        check_bundle(bundle)  # raises unless signature and chain hold
    assert certificates.message(certificate).decode() == bundle["certificate"]["message"]
    seqs = [event["seq"] for event in bundle["events"]]
    assert seqs == list(range(certificate.event_seq, certificate.checkpoint_seq + 1))
    assert bundle["events"][0]["hash"] == certificate.event_hash
    assert bundle["events"][0]["tag"] == AuditTag.LIST_SHRED
    assert set(bundle["events"][0]) == {"seq", "tag", "canonical", "hash"}

    assert verified_client(world.staff_b).get(url).status_code == 404
    denied = Event.objects.filter(tag=AuditTag.CERTIFICATE_DENY).latest("seq")
    assert (denied.actor_user_id, denied.reason) == (world.staff_b.pk, "not_yours")
    assert verified_client(world.operator).get(url).status_code == 403


def _replace_line(text: str, index: int, value: str) -> str:
    lines = text.split("\n")
    lines[index] = value
    return "\n".join(lines)


def _edit_event(bundle: dict) -> None:
    # An edited event with its hash recomputed: its own hash holds, the chain does not.
    event = bundle["events"][0]
    event["canonical"] = event["canonical"].replace("retention", "retentioN")
    event["hash"] = hashlib.sha256(event["canonical"].encode()).hexdigest()


TAMPERINGS = {
    "row count": lambda b: b["certificate"].update(
        message=_replace_line(b["certificate"]["message"], 6, "7")
    ),
    "certificate signature": lambda b: b["certificate"].update(
        signature=b["certificate"]["signature"][:-2]
        + ("00" if not b["certificate"]["signature"].endswith("00") else "01")
    ),
    "event encoding": lambda b: b["events"][0].update(
        canonical=b["events"][0]["canonical"].replace("retention", "retentioN")
    ),
    "event rehashed": _edit_event,
    "event dropped": lambda b: b["events"].pop(),
    "checkpoint swapped": lambda b: b["checkpoint"].update(signature="00" * 64),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_a_tampered_verification_bundle_fails_the_documented_checker(world, expired, tampering):
    from cryptography.exceptions import InvalidSignature

    enforce()
    bundle = download_bundle(world)
    check_bundle = documented_checker()
    check_bundle(copy.deepcopy(bundle))

    TAMPERINGS[tampering](bundle)

    with pytest.raises((InvalidSignature, ValueError)):
        check_bundle(bundle)


def test_the_pdf_link_answers_503_without_chromium_and_the_page_stays(world, expired, monkeypatch):
    enforce()
    certificate = DeletionCertificate.objects.get()
    monkeypatch.setattr(certificates, "CHROMIUM", "/nonexistent/chromium")
    client = verified_client(world.staff_a)

    response = client.get(reverse("exports:certificate_pdf", args=[certificate.pk]))

    assert response.status_code == 503
    assert "ブラウザから印刷" in response.text  # the Japanese UI says to print from the browser
    assert client.get(reverse("exports:certificate", args=[certificate.pk])).status_code == 200


@pytest.mark.browser
def test_the_certificate_prints_to_pdf_for_its_insurer_only(world, expired):
    if not Path(certificates.CHROMIUM).exists():
        pytest.skip(f"no Chromium at {certificates.CHROMIUM}")
    enforce()
    certificate = DeletionCertificate.objects.get()
    url = reverse("exports:certificate_pdf", args=[certificate.pk])

    response = verified_client(world.staff_a).get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert verified_client(world.staff_b).get(url).status_code == 404
    denied = Event.objects.filter(tag=AuditTag.CERTIFICATE_DENY).latest("seq")
    assert (denied.actor_user_id, denied.reason) == (world.staff_b.pk, "not_yours")


def contract_on_record(world, fiscal_year: int, until: date) -> TargetList:
    """A contract made through the service (its deadline on the record) and a list."""
    from yobikake.tenancy.services import create_contract

    create_contract(
        actor=world.fed_admin,
        insurer=world.insurer_a,
        fiscal_year=fiscal_year,
        calling_starts=date(fiscal_year, 9, 1),
        calling_ends=date(fiscal_year, 12, 20),
        retention_until=until,
    )
    target_list, _people = load_people(world, count=4, seed=fiscal_year, fiscal_year=fiscal_year)
    return target_list


def test_a_deadline_moved_later_in_the_database_does_not_keep_the_list(world):
    """The 2023 leak held lists kept for eight years: a deadline pushed back in the
    database is caught, the list shredded by the record's deadline, the officer told."""
    target_list = contract_on_record(world, 2020, date(2022, 3, 31))
    keep_until(target_list, date(2099, 3, 31))  # by the database's administrator
    record = enforce()
    assert [row["list_id"] for row in record["shredded"]] == [target_list.pk]
    assert TargetList.objects.get(pk=target_list.pk).state == TargetList.State.SHREDDED
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2020)
    assert record["moved_deadlines"] == [contract.pk]
    [moved] = Event.objects.filter(tag=AuditTag.RETENTION_MOVED)
    assert json.loads(moved.details) == {
        "contract_id": contract.pk, "fiscal_year": 2020, "column": 20990331, "recorded": 20220331,
    }  # fmt: skip
    [alert] = Alert.objects.filter(rule="retention_moved")
    assert alert.severity == "critical" and "20220331" in alert.summary
    assert enforce()["moved_deadlines"] == []  # once per moved value
    assert Event.objects.filter(tag=AuditTag.RETENTION_MOVED).count() == 1


def test_a_deadline_moved_earlier_in_the_database_does_not_shred_the_list(world):
    target_list = contract_on_record(world, 2020, date(2099, 3, 31))
    keep_until(target_list, date(2021, 3, 31))
    record = enforce()
    assert record["due"] == [] and record["shredded"] == []
    assert Alert.objects.filter(rule="retention_moved", severity="critical").exists()
    with pytest.raises(NotPermitted):
        shred_expired_list(target_list=target_list)
    assert TargetList.objects.get(pk=target_list.pk).state == TargetList.State.ACTIVE
