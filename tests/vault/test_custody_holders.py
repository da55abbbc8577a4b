"""The insider's move "mint people and grants", against a real custodian process: with
the database and the application's own MAC helpers, an account, an approved role and a
grant made in the application domain alone open nothing, and the try is a critical
custody alert; the user is told in Japanese. A revocation reaches custody at once."""

import pytest
from django.utils import timezone
from django.utils.translation import override

from tests.conftest import load_people, make_user
from yobikake.accounts import authz
from yobikake.accounts.models import RoleAssignment
from yobikake.accounts.permissions import Role
from yobikake.accounts.services import revoke_role
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.alerts import AlertKind
from yobikake.custody.config import Config
from yobikake.custody.keyring import SigningKey
from yobikake.custody.ledger import Ledger
from yobikake.custody.protocol import CustodyRefused, Refusal
from yobikake.intake.models import Target
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import RevealRefused, open_request, reveal
from yobikake.vault.services import issue_grant


def custody_alerts(home) -> list:
    """The custodian's own alerts, read from its ledger (the custody host's view)."""
    config = Config.load(home)
    ledger = Ledger(config.ledger_path, SigningKey.load(config.signing_key_path))
    try:
        return ledger.alerts()
    finally:
        ledger.close()


@pytest.fixture
def targets(world, custody_process):
    """A list sealed to the custodian process's keys."""
    target_list, _ = load_people(world, count=3)
    return list(Target.objects.filter(target_list=target_list).order_by("row_number"))


def test_a_role_minted_with_the_application_s_keys_opens_nothing_and_alerts_custody(
    world, targets, custody_process
):
    # The insider's account, role and grant, each with a MAC the application accepts.
    insider = make_user("insider", world.call_centre, None)
    role = RoleAssignment.objects.create(
        user=insider, role=Role.OPERATOR, status=RoleAssignment.Status.ACTIVE,
        requested_by=world.sysadmin, decided_by=world.fed_admin, decided_at=timezone.now(),
    )  # fmt: skip
    authz.seal(role)
    issue_grant(actor=world.supervisor, holder=insider, target=targets[0], purpose=Purpose.CALL)

    with override("ja"), pytest.raises(RevealRefused) as refused:
        reveal(insider, targets[0], Purpose.CALL)
    assert refused.value.code == "holder_unknown"
    assert "鍵保管サービスで確認されていない" in str(refused.value)
    denial = Event.objects.filter(tag=AuditTag.REVEAL_CALL, outcome=Event.Outcome.DENIED).last()
    assert (denial.actor_user_id, denial.reason) == (insider.pk, "custody_holder_unknown")

    [alert] = [
        a for a in custody_alerts(custody_process.home) if a.kind == AlertKind.HOLDER_UNKNOWN
    ]
    assert (alert.severity, alert.holder_user_id) == ("critical", insider.pk)

    # The genuine operator, confirmed in custody, still opens.
    issue_grant(
        actor=world.supervisor, holder=world.operator, target=targets[1], purpose=Purpose.CALL
    )
    assert reveal(world.operator, targets[1], Purpose.CALL)["name_kana"]


def test_a_revocation_in_the_application_reaches_custody_at_once(world, targets, custody_process):
    grant = issue_grant(
        actor=world.supervisor, holder=world.operator, target=targets[0], purpose=Purpose.CALL
    )
    assert reveal(world.operator, targets[0], Purpose.CALL)["name_kana"]
    assignment = RoleAssignment.objects.get(user=world.operator, role=Role.OPERATOR)
    revoke_role(actor=world.security, assignment=assignment)
    # Asked straight through the port, past the application's own checks (as whoever
    # rewrites the database would have it): custody itself no longer opens.
    request = open_request(world.operator.pk, grant.pk, targets[0], Purpose.CALL)
    with pytest.raises(CustodyRefused) as refused:
        custodian().open(request)
    assert refused.value.code == Refusal.HOLDER_UNKNOWN
