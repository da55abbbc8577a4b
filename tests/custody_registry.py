"""The tests' custody registry of holders: roles confirmed as the security officer would
confirm them on the custody host, and approvals confirmed as an approver's passkey does
on the custodian's page (tests/browser/test_custody_approval.py does it with a passkey).
No Django here: tests/conftest.py imports it first."""

from datetime import UTC, datetime, timedelta

# Roles confirmed so far in the test, and the test's custodians (`custody.core.Custodian`:
# the in-process one, and one beside any custodian process the test starts, on its home);
# tests/conftest.py resets both for each test.
CONFIRMED: list[tuple[int, str, int | None]] = []
CUSTODIANS: list = []
# The account id of the tests' approver in custody: no account of a test's.
TEST_APPROVER = 10**9


def confirm_in_custody(user, role) -> None:
    """Confirm `user`'s `role` in custody's registry of holders, in every custodian of
    the test (now and started later)."""
    holder = (user.pk, str(role), user.organization.insurer_id)
    CONFIRMED.append(holder)
    for custodian in CUSTODIANS:
        confirm(custodian, *holder)


def adopt(custodian) -> None:
    """A custodian of the test: the roles confirmed so far, confirmed in it too."""
    for holder in CONFIRMED:
        confirm(custodian, *holder)
    CUSTODIANS.append(custodian)


def confirm(custodian, user_id: int, role: str, insurer_id: int | None) -> None:
    until = datetime.now(UTC) + timedelta(days=365)
    custodian.confirm_holder(user_id, role, insurer_id, until, by="tests")


def confirm_filed_approvals() -> None:
    """Every approval filed with the test's custodians, confirmed by the tests' approver."""
    for custodian in CUSTODIANS:
        registry = custodian.registry
        approver = next((a for a in registry.enrolled() if a.name == "tests"), None)
        if approver is None:
            now = datetime.now(UTC)
            token = registry.add_approver("tests", TEST_APPROVER, now + timedelta(hours=1), now)
            registry.enrol(registry.approver_by_enrol_token(token, now), b"tests", now)
            approver = next(a for a in registry.enrolled() if a.name == "tests")
        for pending in registry.pending():
            custodian.confirm_approval(pending, approver)


def approve_confirmed(*, actor, approval):
    """`exports.services.approve`, then the approval confirmed in custody, as the
    approver's passkey confirms it on the custodian's page."""
    from yobikake.exports import services

    approved = services.approve(actor=actor, approval=approval)
    confirm_filed_approvals()
    return approved
