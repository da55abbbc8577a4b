"""The tests' custody registry of holders: roles confirmed as the security officer would
confirm them on the custody host. No Django here: tests/conftest.py imports it first."""

# Roles confirmed in the tests' custody (as the security officer would, on the custody
# host) and where to confirm them: the in-process custodian, and any custodian process a
# test starts (tests/conftest.py resets both for each test).
CONFIRMED: list[tuple[int, str, int | None]] = []
CONFIRMERS: list = []


def confirm_in_custody(user, role) -> None:
    """Confirm `user`'s `role` in custody's registry of holders, in every custodian of
    the test (now and started later): what the demo does through `custodian holder
    confirm`, and what an approver's passkey does on the custodian's page."""
    holder = (user.pk, str(role), user.organization.insurer_id)
    CONFIRMED.append(holder)
    for confirm in CONFIRMERS:
        confirm(*holder)


def confirmer(custodian_core):
    """A function confirming holders in `custodian_core`'s registry, for a year."""
    from datetime import UTC, datetime, timedelta

    def confirm(user_id: int, role: str, insurer_id: int | None) -> None:
        until = datetime.now(UTC) + timedelta(days=365)
        custodian_core.confirm_holder(user_id, role, insurer_id, until, by="tests")

    return confirm
