"""Custody's registry of holders: the custodian opens only for a role it has confirmed
itself, unexpired, unrevoked; anything else is refused with a critical alert. Approvals
filed by the application confirm nothing until an approver enrolled in custody confirms
them."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.custody.conftest import INSURER_ID, UNKNOWN_HOLDER, new_batch
from tests.custody.test_core_bulk import export, export_of
from yobikake.custody.alerts import AlertKind
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import ApprovalRequest, CustodyRefused, Holder, Refusal


def refused_code(call, *args) -> str:
    with pytest.raises(CustodyRefused) as caught:
        call(*args)
    return caught.value.code


def critical(custodian, kind) -> list:
    return [a for a in custodian.alerts() if a.kind == kind and a.severity == "critical"]


def role_request(user_id=UNKNOWN_HOLDER, role="operator", insurer_id=None, **change):
    request = ApprovalRequest(
        kind="role",
        holder_user_id=user_id,
        holder_name="op-new",
        role=role,
        insurer_id=insurer_id,
        until=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
        summary="Operator — CC",
        app_ref=4,
        approved_by_user_id=2,
    )
    return replace(request, **change)


def approver(custodian, name="fed-admin", user_id=2):
    """An approver added by the security officer and enrolled (the passkey itself is the
    page's business: tests/browser/test_custody_approval.py)."""
    now = datetime.now(UTC)
    token = custodian.registry.add_approver(name, user_id, now + timedelta(hours=1), now)
    row = custodian.registry.approver_by_enrol_token(token, now)
    custodian.registry.enrol(row, b"credential", now)
    return next(a for a in custodian.registry.enrolled() if a.name == name)


def test_an_account_custody_never_confirmed_opens_nothing_and_is_a_critical_alert(
    local_custodian,
):
    batch = new_batch(local_custodian)
    request = batch.request(user_id=UNKNOWN_HOLDER)
    assert refused_code(local_custodian.open, request) == Refusal.HOLDER_UNKNOWN
    [alert] = critical(local_custodian, AlertKind.HOLDER_UNKNOWN)
    assert alert.holder_user_id == UNKNOWN_HOLDER
    refusal = [e for e in local_custodian.entries() if e.kind == Kind.REFUSE][-1]
    assert refusal.reason == Refusal.HOLDER_UNKNOWN
    assert not [e for e in local_custodian.entries() if e.kind == Kind.OPEN]


def test_a_confirmed_role_opens_only_for_its_purposes_until_revoked(local_custodian):
    batch = new_batch(local_custodian)
    until = datetime.now(UTC) + timedelta(days=30)
    local_custodian.confirm_holder(UNKNOWN_HOLDER, "researcher", None, until, by="officer")
    # A researcher's role does not open a call, whatever the request calls the holder.
    call = batch.request(user_id=UNKNOWN_HOLDER, role="operator")
    assert refused_code(local_custodian.open, call) == Refusal.HOLDER_UNKNOWN
    local_custodian.confirm_holder(UNKNOWN_HOLDER, "operator", None, until, by="officer")
    assert local_custodian.open(call).values
    assert local_custodian.revoke_holder(UNKNOWN_HOLDER, "operator") == 1
    assert refused_code(local_custodian.open, call) == Refusal.HOLDER_UNKNOWN
    kinds = [(e.kind, e.outcome) for e in local_custodian.entries() if e.kind == Kind.HOLDER]
    assert kinds[-3:] == [("holder", "confirmed"), ("holder", "confirmed"), ("holder", "revoked")]


def test_a_role_past_its_end_opens_nothing(local_custodian, clock):
    batch = new_batch(local_custodian)
    local_custodian.confirm_holder(
        UNKNOWN_HOLDER, "operator", None, clock.now + timedelta(hours=1), by="officer"
    )
    request = batch.request(user_id=UNKNOWN_HOLDER)
    assert local_custodian.open(request).values
    clock.advance(hours=2)
    assert refused_code(local_custodian.open, request) == Refusal.HOLDER_UNKNOWN


def test_an_insurer_s_staff_exports_only_their_own_insurer_s_file(
    local_custodian, insurer_key_confirmed
):
    until = datetime.now(UTC) + timedelta(days=30)
    local_custodian.confirm_holder(
        UNKNOWN_HOLDER, "insurer_staff", INSURER_ID + 1, until, by="officer"
    )
    request = replace(
        export_of([new_batch(local_custodian)], range(1, 3)),
        holder=Holder(user_id=UNKNOWN_HOLDER, role="default"),
    )
    assert refused_code(export, local_custodian, request) == Refusal.HOLDER_UNKNOWN
    local_custodian.confirm_holder(UNKNOWN_HOLDER, "insurer_staff", INSURER_ID, until, by="o")
    assert len(export(local_custodian, request).values) == 2


def test_a_filed_approval_opens_nothing_until_an_enrolled_approver_confirms_it(
    local_custodian,
):
    batch = new_batch(local_custodian)
    filed = local_custodian.file_approval(role_request())
    assert filed.url.startswith("https://localhost:8102/approve/")
    assert local_custodian.approval_state(filed.approval_id).state == "pending"
    request = batch.request(user_id=UNKNOWN_HOLDER)
    assert refused_code(local_custodian.open, request) == Refusal.HOLDER_UNKNOWN

    token = filed.url.rsplit("/", 1)[1]
    pending = local_custodian.registry.approval_by_token(token)
    local_custodian.confirm_approval(pending, approver(local_custodian))
    state = local_custodian.approval_state(filed.approval_id)
    assert (state.state, state.confirmed_by) == ("confirmed", "fed-admin")
    assert local_custodian.open(request).values
    confirmed = [e for e in local_custodian.entries() if e.kind == Kind.APPROVAL][-1]
    assert (confirmed.outcome, confirmed.holder_user_id) == ("confirmed", UNKNOWN_HOLDER)


def test_an_approval_is_confirmed_once_and_never_by_its_own_holder(local_custodian):
    filed = local_custodian.file_approval(role_request())
    pending = local_custodian.registry.approval_by_token(filed.url.rsplit("/", 1)[1])
    own = approver(local_custodian, "self", user_id=UNKNOWN_HOLDER)
    assert refused_code(local_custodian.confirm_approval, pending, own)
    assert local_custodian.approval_state(filed.approval_id).state == "pending"
    local_custodian.confirm_approval(pending, approver(local_custodian))
    assert refused_code(local_custodian.confirm_approval, pending, approver(local_custodian))
    # Both refusals on the ledger; one alert for the holder within the hour.
    refusals = [e for e in local_custodian.entries() if e.kind == Kind.REFUSE]
    assert [e.holder_user_id for e in refusals] == [UNKNOWN_HOLDER, UNKNOWN_HOLDER]
    [alert] = critical(local_custodian, AlertKind.APPROVAL_REFUSED)
    assert "of their own" in alert.summary


@pytest.mark.parametrize(
    "change",
    [
        {"until": "tomorrow"},
        {"until": "2000-01-01T00:00:00+00:00"},
        {"kind": "everything"},
        {"role": "Operator; DROP"},
        {"role": "insurer_staff"},  # an insurer's role names its insurer
        {"holder_user_id": -1},
    ],
)
def test_a_malformed_approval_is_refused(local_custodian, change):
    request = role_request(**change)
    assert refused_code(local_custodian.file_approval, request) == Refusal.BAD_REQUEST


def test_a_role_lasts_no_longer_than_custody_allows(local_custodian):
    far = (datetime.now(UTC) + timedelta(days=5000)).isoformat()
    filed = local_custodian.file_approval(role_request(until=far))
    row = local_custodian.registry.approval(filed.approval_id)
    limit = datetime.now(UTC) + timedelta(days=local_custodian.config.holder_max_days)
    assert datetime.fromisoformat(row.until) <= limit


def test_the_registry_survives_neither_deletion_nor_un_revoking(local_custodian):
    import sqlite3

    until = datetime.now(UTC) + timedelta(days=1)
    local_custodian.confirm_holder(UNKNOWN_HOLDER, "operator", None, until, by="officer")
    local_custodian.revoke_holder(UNKNOWN_HOLDER, "operator")
    db = sqlite3.connect(local_custodian.config.ledger_path)
    with pytest.raises(sqlite3.DatabaseError, match="stays revoked"):
        db.execute("UPDATE holders SET revoked_at = NULL WHERE user_id = ?", (UNKNOWN_HOLDER,))
    with pytest.raises(sqlite3.DatabaseError, match="never deleted"):
        db.execute("DELETE FROM holders")
    db.close()


def test_an_export_file_needs_its_approval_confirmed_in_custody(
    local_custodian, insurer_key_confirmed
):
    unknown_approval = 50_000  # outside the approvals the tests' registries hold
    request = export_of([new_batch(local_custodian)], range(1, 3), approval=unknown_approval)
    # Never filed with custody (written in the application's database alone): a critical
    # alert.
    assert refused_code(export, local_custodian, request) == Refusal.APPROVAL_UNKNOWN
    [alert] = critical(local_custodian, AlertKind.APPROVAL_UNKNOWN)
    assert str(unknown_approval) in alert.summary
    # Filed, not yet confirmed: refused, and no alert (the approver has not confirmed yet).
    filed = local_custodian.file_approval(
        role_request(
            kind="export",
            role="results",
            insurer_id=INSURER_ID,
            app_ref=unknown_approval,
            holder_user_id=7,
        )
    )
    assert refused_code(export, local_custodian, request) == Refusal.APPROVAL_PENDING
    assert len(critical(local_custodian, AlertKind.APPROVAL_UNKNOWN)) == 1
    pending = local_custodian.registry.approval(filed.approval_id)
    local_custodian.confirm_approval(pending, approver(local_custodian))
    assert len(export(local_custodian, request).values) == 2
    # An export approval names the application's approval and its insurer.
    bad = role_request(kind="export", role="results", insurer_id=INSURER_ID, app_ref=None)
    assert refused_code(local_custodian.file_approval, bad) == Refusal.BAD_REQUEST
