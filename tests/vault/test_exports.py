"""The vault's bulk road: `open_for_export` opens many people in one go, only for an
approved, unexpired, unused export of exactly this insurer, to that insurer's staff —
with one audit event — and refuses (on the record) everything else, including what a
database administrator can write."""

import json

import pytest

from tests.exports import conftest as exports
from tests.incidents.leaks import scoped_leak
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.exports import services
from yobikake.exports.models import Approval
from yobikake.exports.selectors import current_key
from yobikake.incidents import selectors
from yobikake.incidents.models import Match
from yobikake.incidents.notification import request_notification_list
from yobikake.intake.models import Target, TargetList
from yobikake.vault.exports import open_for_export
from yobikake.vault.reveal import RevealRefused

FIELDS = ("name_kanji", "address")

# The exports tests' fixtures, here too.
canaries, identities, requested = exports.canaries, exports.identities, exports.requested


def target_ids(leak, insurer):
    return list(
        selectors.affected(leak.incident)
        .filter(insurer_id=insurer.pk)
        .values_list("target_id", flat=True)
        .distinct()
    )


def open_as(actor, approval, insurer, ids):
    return open_for_export(
        actor=actor, approval=approval, insurer_id=insurer.pk, target_ids=ids, fields=FIELDS
    )


def refusal(actor, approval, insurer, ids):
    with pytest.raises(RevealRefused) as refused:
        open_as(actor, approval, insurer, ids)
    return refused.value.code


def approved_with_a_match_slipped_in(world, leak, target, insurer_id):
    """Insurer A's list approved after someone added a match of `target` (labelled as
    `insurer_id`'s) in the database, before the request: the request binds it."""
    Match.objects.create(
        incident=leak.incident,
        leak_row=999,
        target_id=target.pk,
        target_list_id=target.target_list_id,
        insurer_id=insurer_id,
        fiscal_year=2022,
        tier=Match.Tier.CERTAIN,
        keys="phone",
    )
    approval = request_notification_list(
        actor=world.security, incident=leak.incident, insurer=world.insurer_a
    )
    return services.approve(actor=world.fed_admin, approval=approval)


def test_an_approved_export_opens_its_people_once_with_one_event(world, requested):
    leak = requested.leak
    approval = services.approve(actor=world.fed_admin, approval=requested.approval)
    ids = target_ids(leak, world.insurer_a)
    opened = open_as(world.staff_a, approval, world.insurer_a, ids)
    assert set(opened.values) == set(ids)
    names = {v["name_kanji"] for v in opened.values.values()}
    assert names == {p.name_kanji for p in leak.leaked_a}
    assert all(set(v) == set(FIELDS) for v in opened.values.values())
    assert opened.recipient == current_key(world.insurer_a.pk)
    [event] = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT)
    assert event.purpose == "export" and json.loads(event.details)["count"] == len(ids)
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "used"


def test_nothing_opens_before_approval_or_for_another_insurer(world, requested):
    ids = target_ids(requested.leak, world.insurer_a)
    approval = requested.approval
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "not_approved"
    services.approve(actor=world.fed_admin, approval=approval)
    # Insurer B's staff, for A's approval, whichever insurer they name.
    assert refusal(world.staff_b, approval, world.insurer_a, ids) == "not_yours"
    assert refusal(world.staff_b, approval, world.insurer_b, ids) == "not_yours"
    # The federation's own roles receive nothing.
    assert refusal(world.fed_admin, approval, world.insurer_a, ids) == "not_permitted"
    assert refusal(world.security, approval, world.insurer_a, ids) == "not_permitted"
    denials = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.DENIED)
    assert denials.count() == 5
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED  # still there for A's staff


def test_only_the_people_the_request_bound_are_opened(world, requested):
    approval = services.approve(actor=world.fed_admin, approval=requested.approval)
    ids = target_ids(requested.leak, world.insurer_a)
    not_leaked = Target.objects.filter(insurer=world.insurer_a).exclude(pk__in=ids).first()
    alerts = Alert.objects.filter(rule="export_tampered", severity=Alert.Severity.CRITICAL)
    for other in (ids[1:], [*ids, not_leaked.pk], target_ids(requested.leak, world.insurer_b)):
        assert refusal(world.staff_a, approval, world.insurer_a, other) == "targets_changed"
    assert alerts.count() == 3
    denials = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, reason="targets_changed")
    assert [json.loads(d.details) for d in denials] == [{"approval_id": approval.pk}] * 3
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED
    assert set(open_as(world.staff_a, approval, world.insurer_a, ids).values) == set(ids)


def test_another_insurers_people_are_not_opened_under_an_approval(world, identities, tmp_path):
    leak = scoped_leak(world, tmp_path)
    of_b = Target.objects.get(pk=target_ids(leak, world.insurer_b)[0])
    approval = approved_with_a_match_slipped_in(world, leak, of_b, world.insurer_a.pk)
    ids = target_ids(leak, world.insurer_a)
    assert of_b.pk in ids
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "cannot_open"
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED


def test_an_approval_written_into_the_database_opens_nothing_and_alerts(world, requested):
    Approval.objects.filter(pk=requested.approval.pk).update(state=Approval.State.APPROVED)
    ids = target_ids(requested.leak, world.insurer_a)
    assert refusal(world.staff_a, requested.approval, world.insurer_a, ids) == (
        "forged_authorization"
    )
    assert Alert.objects.filter(rule="forged_authorization").exists()


def test_a_used_approval_put_back_in_the_database_stays_used(world, requested):
    approval = services.approve(actor=world.fed_admin, approval=requested.approval)
    genuine = Approval.objects.filter(pk=approval.pk).values("state", "mac").get()
    ids = target_ids(requested.leak, world.insurer_a)
    open_as(world.staff_a, approval, world.insurer_a, ids)
    # Its earlier, genuinely MAC'd state restored as it was.
    Approval.objects.filter(pk=approval.pk).update(used_by=None, used_at=None, **genuine)
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "used"


def test_a_canary_slipped_into_the_targets_is_refused_and_alerted(
    world, canaries, identities, tmp_path
):
    # (`canaries` first: the lists are loaded with their canaries planted.)
    leak = scoped_leak(world, tmp_path)
    list_a = TargetList.objects.filter(insurer=world.insurer_a, fiscal_year=2022).get()
    canary = Target.objects.get(pk=min(canaries.of_list(list_a)))
    approval = approved_with_a_match_slipped_in(world, leak, canary, world.insurer_a.pk)
    ids = target_ids(leak, world.insurer_a)
    assert canary.pk in ids
    alerts = Alert.objects.filter(rule="canary_touched", severity=Alert.Severity.CRITICAL)
    before = alerts.count()
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "canary"
    assert alerts.count() == before + 1
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED


def test_only_sealed_fields_are_asked_for(world, requested):
    with pytest.raises(ValueError):
        open_for_export(
            actor=world.staff_a,
            approval=requested.approval,
            insurer_id=world.insurer_a.pk,
            target_ids=[],
            fields=("age",),
        )
