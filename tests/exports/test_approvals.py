"""Approvals: a request for an export, decided by a second person under the kind's
policy before it expires; insurers' keys. Every action writes one audit row; every
refusal is on the record."""

import hashlib
import json
from datetime import timedelta

import pyrage
import pytest
import time_machine
from django.utils import timezone

from tests.conftest import make_insurer, make_user
from tests.custody_registry import approve_confirmed
from tests.incidents.leaks import scoped_leak
from yobikake.accounts import authz
from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import RoleAssignment
from yobikake.accounts.permissions import Role
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.exports import approvals, services
from yobikake.exports.models import Approval, InsurerKey
from yobikake.exports.selectors import current_key
from yobikake.incidents import selectors
from yobikake.incidents.notification import request_notification_list


def only_event(tag, **filters):
    [event] = Event.objects.filter(tag=tag, **filters)
    return event


def test_a_request_is_approved_by_a_second_person_with_one_event_each(world, requested):
    approval = requested.approval
    assert approval.current_state == Approval.State.REQUESTED
    assert approval.recipient == current_key(world.insurer_a.pk)
    # The people it will release are bound into it: how many, and which (a digest).
    leak = requested.leak
    affected = selectors.affected(leak.incident).filter(insurer_id=world.insurer_a.pk)
    ids = sorted(set(affected.values_list("target_id", flat=True)))
    assert len(ids) == len(leak.leaked_a) + len(leak.both_years)
    assert approval.subject == {
        "incident_id": leak.incident.pk,
        "target_count": len(ids),
        "targets_sha256": hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest(),
    }
    event = only_event(AuditTag.APPROVAL_REQUEST)
    assert event.actor_user_id == world.security.pk and event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details) == {
        "approval_id": approval.pk,
        "incident_id": leak.incident.pk,
        "kind": "notification_list",
        "target_count": len(ids),
    }

    approved = approve_confirmed(actor=world.fed_admin, approval=approval)
    assert approved.state == Approval.State.APPROVED
    assert approved.decided_by == world.fed_admin
    remaining = approved.expires_at - timezone.now()
    assert timedelta(hours=23, minutes=59) < remaining <= timedelta(hours=24)
    event = only_event(AuditTag.APPROVAL_APPROVE)
    assert event.actor_user_id == world.fed_admin.pk and event.subject_user_id == world.security.pk
    assert approvals.is_sealed(approved)


def test_the_requester_cannot_approve_their_own_request_whatever_roles_they_hold(world, tmp_path):
    # One person who is both security officer and federation admin.
    both = make_user("both-hats", world.federation, Role.SECURITY_OFFICER)
    authz.seal(
        RoleAssignment.objects.create(
            user=both, role=Role.FEDERATION_ADMIN, status=RoleAssignment.Status.ACTIVE
        )
    )
    services.register_insurer_key(
        actor=world.staff_a, public_key=str(pyrage.x25519.Identity.generate().to_public())
    )
    leak = scoped_leak(world, tmp_path)
    approval = request_notification_list(
        actor=both, incident=leak.incident, insurer=world.insurer_a
    )
    with pytest.raises(AccountError) as refused:
        approve_confirmed(actor=both, approval=approval)
    assert refused.value.code == "own_request"
    approval.refresh_from_db()
    assert approval.state == Approval.State.REQUESTED
    denial = only_event(AuditTag.APPROVAL_APPROVE)
    assert (denial.outcome, denial.reason) == (Event.Outcome.DENIED, "own_request")
    assert json.loads(denial.details) == {"approval_id": approval.pk}


@pytest.mark.parametrize("role", ["sysadmin", "staff_a", "operator", "security"])
def test_only_holders_of_the_approve_permission_decide(world, requested, role):
    for decide in (services.approve, services.refuse):
        with pytest.raises(AccountError) as refused:
            decide(actor=getattr(world, role), approval=requested.approval)
        code = "own_request" if role == "security" else "missing:export:any:approve"
        assert refused.value.code == code
    assert Event.objects.filter(outcome=Event.Outcome.DENIED, reason=code).count() == 2
    requested.approval.refresh_from_db()
    assert requested.approval.state == Approval.State.REQUESTED


def test_a_request_not_decided_in_time_expires(world, requested):
    later = timezone.now() + timedelta(hours=24, minutes=1)
    with time_machine.travel(later), pytest.raises(AccountError) as refused:
        approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    assert refused.value.code == "expired"
    requested.approval.refresh_from_db()
    assert requested.approval.state == Approval.State.EXPIRED
    assert approvals.is_sealed(requested.approval)
    assert only_event(AuditTag.APPROVAL_APPROVE).reason == "expired"


def test_a_refused_request_can_be_asked_again_an_open_one_cannot(world, requested):
    incident = requested.leak.incident
    with pytest.raises(AccountError) as twice:
        request_notification_list(actor=world.security, incident=incident, insurer=world.insurer_a)
    assert twice.value.code == "already_requested"
    refused = services.refuse(actor=world.fed_admin, approval=requested.approval)
    assert refused.state == Approval.State.REFUSED
    assert only_event(AuditTag.APPROVAL_REFUSE).actor_user_id == world.fed_admin.pk
    with pytest.raises(AccountError) as decided:
        approve_confirmed(actor=world.fed_admin, approval=refused)
    assert decided.value.code == "already_decided"
    again = request_notification_list(
        actor=world.security, incident=incident, insurer=world.insurer_a
    )
    assert again.pk != refused.pk


def test_only_the_security_officer_asks_for_a_notification_list(world, identities, tmp_path):
    leak = scoped_leak(world, tmp_path)
    for user in (world.fed_admin, world.staff_a, world.sysadmin):
        with pytest.raises(AccountError) as refused:
            request_notification_list(actor=user, incident=leak.incident, insurer=world.insurer_a)
        assert refused.value.code == "missing:incident:any:manage"
    assert not Approval.objects.exists()
    assert Event.objects.filter(tag=AuditTag.APPROVAL_REQUEST, outcome="denied").count() == 3


def test_nothing_is_asked_for_an_insurer_without_a_key_or_without_affected_persons(world, tmp_path):
    leak = scoped_leak(world, tmp_path)
    with pytest.raises(AccountError) as no_key:
        request_notification_list(
            actor=world.security, incident=leak.incident, insurer=world.insurer_a
        )
    assert no_key.value.code == "no_insurer_key"
    with pytest.raises(AccountError) as nobody:
        request_notification_list(
            actor=world.security, incident=leak.incident, insurer=make_insurer("21903", "他村C")
        )
    assert nobody.value.code == "nothing_to_export"


def test_a_request_whose_row_was_edited_in_the_database_is_refused_and_alerted(world, requested):
    Approval.objects.filter(pk=requested.approval.pk).update(
        expires_at=timezone.now() + timedelta(days=365)
    )
    with pytest.raises(AccountError) as refused:
        approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    assert refused.value.code == "forged_authorization"
    assert Alert.objects.filter(rule="forged_authorization").exists()


def test_a_key_swapped_in_the_database_is_not_encrypted_to(world, identities, tmp_path):
    leak = scoped_leak(world, tmp_path)
    intruder = str(pyrage.x25519.Identity.generate().to_public())
    InsurerKey.objects.filter(insurer=world.insurer_a).update(public_key=intruder)
    with pytest.raises(AccountError) as refused:
        request_notification_list(
            actor=world.security, incident=leak.incident, insurer=world.insurer_a
        )
    assert refused.value.code == "forged_authorization"


def test_the_policy_can_want_another_organisation_or_other_roles(world, requested):
    approval = requested.approval
    strict = approvals.Policy(
        request_permission=approvals.POLICIES[Approval.Kind.NOTIFICATION_LIST].request_permission,
        other_organization=True,
    )
    with pytest.raises(AccountError) as same_org:
        approvals.check_approver(strict, approval, world.fed_admin)
    assert same_org.value.code == "same_organization"
    other_roles = approvals.Policy(request_permission=strict.request_permission, other_roles=True)
    colleague = make_user("second-officer", world.federation, Role.SECURITY_OFFICER)
    authz.seal(
        RoleAssignment.objects.create(
            user=colleague, role=Role.FEDERATION_ADMIN, status=RoleAssignment.Status.ACTIVE
        )
    )
    with pytest.raises(AccountError) as same_role:
        approvals.check_approver(other_roles, approval, colleague)
    assert same_role.value.code == "same_role"
    approvals.check_approver(other_roles, approval, world.fed_admin)  # passes


def test_insurer_staff_register_an_age_key_and_nothing_else_is_taken(world):
    identity = pyrage.x25519.Identity.generate()
    key = services.register_insurer_key(actor=world.staff_a, public_key=f" {identity.to_public()} ")
    assert key.public_key == str(identity.to_public()) and key.insurer == world.insurer_a
    assert approvals.is_sealed(key)
    event = only_event(AuditTag.EXPORT_KEY_REGISTER)
    assert event.insurer_id == world.insurer_a.pk and json.loads(event.details) == {
        "key_id": key.pk
    }
    with pytest.raises(AccountError) as bad:
        services.register_insurer_key(actor=world.staff_a, public_key=str(identity))
    assert bad.value.code == "bad_public_key"  # a private key, pasted by mistake, is refused
    with pytest.raises(AccountError) as not_staff:
        services.register_insurer_key(actor=world.security, public_key=str(identity.to_public()))
    assert not_staff.value.code == "missing:export:own:download"
    assert InsurerKey.objects.count() == 1
