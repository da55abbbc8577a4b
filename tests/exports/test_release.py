"""Releasing an approved export: what a database administrator changes between the
approval and the download gets them nothing. The file is encrypted only to the key the
vault read and checked under the approval's lock, and only for the people the request
bound; anything else is refused on the record, with a critical alert."""

import json

import pyrage
import pytest
from django.utils import translation

from tests.custody_registry import approve_confirmed
from tests.exports.conftest import decrypt_csv
from yobikake.accounts.errors import AccountError
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.exports import approvals, services
from yobikake.exports.models import Approval, InsurerKey
from yobikake.exports.selectors import access_own_approval
from yobikake.incidents import selectors
from yobikake.incidents.models import Match
from yobikake.intake.models import Target
from yobikake.vault.exports import REFUSALS


@pytest.fixture
def approved(world, requested):
    approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    return requested


def refusals():
    return Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.DENIED)


def assert_nothing_released(approval):
    assert not Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED)
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED


def test_a_key_swapped_while_the_download_starts_and_put_back_is_not_encrypted_to(
    world, approved, identities
):
    key = approved.approval.recipient
    intruder = pyrage.x25519.Identity.generate()
    InsurerKey.objects.filter(pk=key.pk).update(public_key=str(intruder.to_public()))
    loaded = access_own_approval(world.staff_a, approved.approval.pk)  # the view's copy
    assert loaded.recipient.public_key == str(intruder.to_public())
    # Put back before the vault locks the approval: its MAC checks out again.
    InsurerKey.objects.filter(pk=key.pk).update(public_key=key.public_key)

    released = services.release_export(actor=world.staff_a, approval=loaded)

    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(released.data, [intruder])
    _, *rows = decrypt_csv(released.data, identities[world.insurer_a.pk])
    assert len(rows) == len(approved.leak.leaked_a)


def test_a_key_swapped_in_the_database_after_approval_releases_nothing(world, approved):
    intruder = str(pyrage.x25519.Identity.generate().to_public())
    InsurerKey.objects.filter(pk=approved.approval.recipient_id).update(public_key=intruder)
    loaded = access_own_approval(world.staff_a, approved.approval.pk)
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=loaded)
    assert refused.value.code == "forged_authorization"
    [denial] = refusals()
    assert denial.reason == "forged_authorization" and denial.actor_user_id == world.staff_a.pk
    assert json.loads(denial.details) == {"approval_id": approved.approval.pk}
    assert Alert.objects.filter(rule="forged_authorization", severity="critical").exists()
    assert_nothing_released(approved.approval)


def test_an_approval_naming_another_insurers_key_releases_nothing(world, approved):
    # As a bug (or a holder of the authorization key) could leave it: sealed, and
    # pointing at insurer B's genuine key.
    approval = approved.approval
    key_b = InsurerKey.objects.get(insurer=world.insurer_b)
    assert approvals.is_sealed(key_b)
    Approval.objects.filter(pk=approval.pk).update(recipient=key_b)
    approval.refresh_from_db()
    approvals.seal(approval)
    with pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=approval)
    assert refused.value.code == "forged_authorization"
    assert [d.reason for d in refusals()] == ["forged_authorization"]
    assert_nothing_released(approval)


def a_person_not_leaked(world, leak):
    affected = selectors.affected(leak.incident).values_list("target_id", flat=True)
    return Target.objects.filter(insurer=world.insurer_a).exclude(pk__in=affected).first()


def add_a_match(world, leak):
    person = a_person_not_leaked(world, leak)
    Match.objects.create(
        incident=leak.incident,
        leak_row=999,
        target_id=person.pk,
        target_list_id=person.target_list_id,
        insurer_id=world.insurer_a.pk,
        fiscal_year=2022,
        tier=Match.Tier.CERTAIN,
        keys="phone",
    )


def delete_a_person(world, leak):
    affected = selectors.affected(leak.incident).filter(insurer_id=world.insurer_a.pk)
    person = affected.values_list("target_id", flat=True)[0]
    Match.objects.filter(incident=leak.incident, target_id=person).delete()


@pytest.mark.parametrize("alter", [add_a_match, delete_a_person])
def test_matches_altered_after_approval_make_the_download_refuse_and_alert(
    world, as_user, approved, alter
):
    alter(world, approved.leak)
    staff = as_user(world.staff_a)
    response = staff.post(f"/exports/{approved.approval.pk}/download/", follow=True)
    assert response.redirect_chain == [("/exports/", 302)]
    with translation.override("ja"):
        assert str(REFUSALS["targets_changed"]) in response.text
    [denial] = refusals()
    assert denial.reason == "targets_changed" and denial.insurer_id == world.insurer_a.pk
    assert json.loads(denial.details) == {"approval_id": approved.approval.pk}
    [alert] = Alert.objects.filter(rule="export_tampered")
    assert alert.severity == Alert.Severity.CRITICAL and alert.event_seq == denial.seq
    assert_nothing_released(approved.approval)


def test_a_key_custody_has_not_confirmed_releases_nothing_even_with_a_valid_mac(
    world, approved, custody
):
    """The insider holds the authorization key too: they register a key of their own
    whose MAC checks out (through the application's own service). Custody encrypts the
    insurer's files only to the key its security officer confirmed."""
    insiders = pyrage.x25519.Identity.generate()
    key = services.register_insurer_key(actor=world.staff_a, public_key=str(insiders.to_public()))
    Approval.objects.filter(pk=approved.approval.pk).update(recipient=key)
    approval = Approval.objects.get(pk=approved.approval.pk)
    approvals.seal(approval)
    approval.save(update_fields=["mac"])
    loaded = access_own_approval(world.staff_a, approval.pk)
    with translation.override("ja"), pytest.raises(AccountError) as refused:
        services.release_export(actor=world.staff_a, approval=loaded)
    assert refused.value.code == "key_not_confirmed"
    assert "セキュリティ責任者" in str(refused.value)
    [denial] = refusals()
    assert denial.reason == "custody_recipient" and denial.actor_user_id == world.staff_a.pk
    [alert] = [a for a in custody.custodian.alerts() if a.kind == "recipient"]
    assert alert.severity == "critical" and str(insiders.to_public()) in alert.summary
    assert_nothing_released(approved.approval)
