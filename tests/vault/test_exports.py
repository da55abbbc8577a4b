"""The vault's bulk road: `export_file` has the custodian make a file of many people
in one go, encrypted to the insurer's key, only for an approved, unexpired, unused
export of exactly this insurer, to that insurer's staff — with one audit event — and
refuses (on the record) everything else, including what a database administrator can
write."""

import hashlib
import json
from dataclasses import dataclass

import pytest

from tests.custody_registry import approve_confirmed
from tests.exports import conftest as exports
from tests.incidents.leaks import scoped_leak
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import SealedCell, to_json
from yobikake.exports.models import Approval
from yobikake.exports.selectors import current_key
from yobikake.incidents import selectors
from yobikake.incidents.models import Match
from yobikake.incidents.notification import request_notification_list
from yobikake.intake.models import Target, TargetList
from yobikake.vault.custodian import custodian
from yobikake.vault.exports import Draft, export_file
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


@dataclass
class Opened:
    values: dict[int, dict[str, str]]  # target id → field → value, as the file has them
    data: bytes


def draft(targets):
    """A file of one line per target: its id (the application's text) and its fields
    (filled in custody)."""
    return Draft(
        name="test.csv",
        header=("id", *FIELDS),
        lines=[[str(t.pk), *(SealedCell(row_id=t.pk, field=f) for f in FIELDS)] for t in targets],
    )


def open_as(actor, approval, insurer, ids, identity=None):
    released = export_file(
        actor=actor,
        approval=approval,
        insurer_id=insurer.pk,
        target_ids=ids,
        fields=FIELDS,
        compose=draft,
    )
    values = {}
    if identity is not None:
        header, *rows = exports.decrypt_csv(released.data, identity)
        assert header == ["id", *FIELDS]
        values = {int(row[0]): dict(zip(FIELDS, row[1:], strict=True)) for row in rows}
    return Opened(values, released.data)


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
    return approve_confirmed(actor=world.fed_admin, approval=approval)


def test_an_approved_export_opens_its_people_once_with_one_event(world, identities, requested):
    leak = requested.leak
    approval = approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    ids = target_ids(leak, world.insurer_a)
    opened = open_as(world.staff_a, approval, world.insurer_a, ids, identities[world.insurer_a.pk])
    assert set(opened.values) == set(ids)
    names = {v["name_kanji"] for v in opened.values.values()}
    assert names == {p.name_kanji for p in leak.leaked_a}
    assert all(set(v) == set(FIELDS) for v in opened.values.values())
    [event] = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT)
    assert event.purpose == "export" and json.loads(event.details)["count"] == len(ids)
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "used"


def test_nothing_opens_before_approval_or_for_another_insurer(world, requested):
    ids = target_ids(requested.leak, world.insurer_a)
    approval = requested.approval
    assert refusal(world.staff_a, approval, world.insurer_a, ids) == "not_approved"
    approve_confirmed(actor=world.fed_admin, approval=approval)
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


def test_only_the_people_the_request_bound_are_opened(world, identities, requested):
    approval = approve_confirmed(actor=world.fed_admin, approval=requested.approval)
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
    identity = identities[world.insurer_a.pk]
    assert set(open_as(world.staff_a, approval, world.insurer_a, ids, identity).values) == set(ids)


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
    approval = approve_confirmed(actor=world.fed_admin, approval=requested.approval)
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
        export_file(
            actor=world.staff_a,
            approval=requested.approval,
            insurer_id=world.insurer_a.pk,
            target_ids=[],
            fields=("age",),
            compose=draft,
        )


def test_the_application_sends_and_receives_no_value_of_the_people(
    world, identities, requested, monkeypatch
):
    """What crosses the port: a template of sealed cells and the application's own text
    out, age ciphertext back; the custodian's plaintext road is never taken."""
    approval = approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    ids = target_ids(requested.leak, world.insurer_a)
    port = custodian()
    crossed = []
    produce = port.produce_file

    def watched(request):
        produced = produce(request)
        crossed.append((json.dumps(to_json(request), ensure_ascii=False).encode(), produced))
        return produced

    def never(request):
        raise AssertionError("an export opened in the clear")

    monkeypatch.setattr(port, "produce_file", watched)
    monkeypatch.setattr(port, "open_bulk", never)
    opened = open_as(world.staff_a, approval, world.insurer_a, ids, identities[world.insurer_a.pk])

    [(sent, produced)] = crossed
    assert produced.data == opened.data
    assert produced.data.startswith(b"age-encryption.org/v1\n")
    values = [v for person in opened.values.values() for v in person.values() if v]
    assert len(values) == len(ids) * len(FIELDS)
    for value in values:
        assert value.encode() not in produced.data and value.encode() not in sent
    assert b"age-encryption.org" not in sent  # the file is made on the other side


def test_the_custodian_s_ledger_records_the_file_under_the_approval(world, identities, requested):
    approval = approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    ids = target_ids(requested.leak, world.insurer_a)
    opened = open_as(world.staff_a, approval, world.insurer_a, ids)
    [entry] = [e for e in custodian().custodian.entries() if e.kind == Kind.OPEN_BULK]
    assert (entry.purpose, entry.grant_id, entry.holder_user_id, entry.insurer_id) == (
        "export",
        approval.pk,
        world.staff_a.pk,
        world.insurer_a.pk,
    )
    recipient = current_key(world.insurer_a.pk).public_key
    assert entry.reason.startswith(f"{len(ids)} rows of lists ")
    assert entry.reason.endswith(
        f" into test.csv ({len(ids)} lines) for {recipient} "
        f"sha256:{hashlib.sha256(opened.data).hexdigest()}"
    )
